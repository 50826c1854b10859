"""The running application's parts, built once at startup and shared by routes and the worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pinelab.config import Settings
from pinelab.db import Database
from pinelab.ops.metrics import Metrics

if TYPE_CHECKING:
    from pinelab.brokers.registry import BrokerRegistry
    from pinelab.jobs.worker import Worker
    from pinelab.signals.service import Ingestor
    from pinelab.signals.writer import SignalWriter
    from pinelab.strategies.tokens import TokenDirectory


@dataclass
class AppContext:
    """Settings, database and the long-lived services of one process."""

    settings: Settings
    db: Database
    secret_key: str
    brokers: BrokerRegistry
    tokens: TokenDirectory
    signal_writer: SignalWriter | None = None
    ingestor: Ingestor | None = None
    worker: Worker | None = None
    extras: dict[str, object] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
