"""Webhook ingestion: authenticate by token, parse, dedupe, store durably, then acknowledge."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pinelab.clock import now
from pinelab.errors import (
    AuthenticationError,
    ConflictError,
    ErrorDetail,
    RateLimitExceeded,
    ResourceNotFoundError,
)
from pinelab.ops.metrics import Metrics
from pinelab.ops.ratelimit import Limit
from pinelab.signals.admission import Admission
from pinelab.signals.exceptions import AlertRejected, AlertTooLarge
from pinelab.signals.intent import AlertIntent
from pinelab.signals.parser import AlertReading, read_alert
from pinelab.signals.writer import ACCEPTED, REJECTED, PendingSignal, SignalWriter
from pinelab.strategies.tokens import StrategySnapshot, TokenDirectory, passphrase_matches


class UnknownWebhook(ResourceNotFoundError):
    """No live strategy has this token (the same answer for a wrong and a deleted one)."""

    def __init__(self) -> None:
        super().__init__("Webhook")


class RecordedRejection(Exception):
    """An alert refused after it was stored; carries the signal id and the refusal."""

    def __init__(self, signal_id: int, error: Exception, strategy_id: int | None = None) -> None:
        super().__init__(str(error))
        self.signal_id = signal_id
        self.error = error
        self.strategy_id = strategy_id


@dataclass(frozen=True)
class IngestResult:
    """What the webhook answers."""

    signal_id: int
    status: str
    strategy_id: int | None = None


@dataclass
class Ingestor:
    """Everything ingestion needs, built once per process."""

    tokens: TokenDirectory
    writer: SignalWriter
    secret_key: str
    strategy_limiter: Limit
    bad_token_limiter: Limit
    job_kind: str  # the job an accepted alert is stored with (the root's execute_signal)
    max_attempts: int = 5
    metrics: Metrics = field(default_factory=Metrics)
    admission: Admission | None = None  # what the bound venues cannot take (signals/admission)

    async def ingest(
        self,
        *,
        token: str,
        body: bytes,
        content_type: str | None,
        source_ip: str | None,
        truncated: bool = False,
    ) -> IngestResult:
        """Store one alert and enqueue its execution, or store why it was refused."""
        self.metrics.alert_received()
        strategy = await self.tokens.lookup(token)
        if strategy is None:
            retry_after = await self.bad_token_limiter.hit(source_ip or "unknown")
            if retry_after is not None:
                raise RateLimitExceeded(
                    "Too many requests with unknown webhook tokens", retry_after=retry_after
                )
            raise UnknownWebhook
        retry_after = await self.strategy_limiter.hit(str(strategy.id))
        if retry_after is not None:
            raise RateLimitExceeded("Too many alerts for this strategy", retry_after=retry_after)
        # Read once: the stored body loses the secrets the message holds, whatever its form.
        reading = read_alert(body, content_type)
        values = _signal_values(strategy, reading.stored_body, content_type, source_ip)
        try:
            intent = _accept(strategy, reading, truncated=truncated, secret_key=self.secret_key)
            if self.admission is not None:
                await self.admission.check(strategy, intent)
        except (AlertRejected, AuthenticationError, ConflictError) as error:
            values.update(status=REJECTED, reason=error.message)
            signal_id, _ = await self.writer.write(PendingSignal(values))
            self.metrics.alert_stored(REJECTED)
            raise RecordedRejection(signal_id, error, strategy.id) from error
        values.update(
            intent=intent.to_record(),
            ticker=intent.ticker,
            action=intent.action.value,
            idempotency_key=intent.idempotency_key,
        )
        pending = PendingSignal(
            values,
            job_kind=self.job_kind,
            job_max_attempts=self.max_attempts,
            duplicate_window_seconds=strategy.duplicate_window_seconds,
        )
        signal_id, status = await self.writer.write(pending)
        self.metrics.alert_stored(status)
        return IngestResult(signal_id=signal_id, status=status, strategy_id=strategy.id)


def _accept(
    strategy: StrategySnapshot, reading: AlertReading, *, truncated: bool, secret_key: str
) -> AlertIntent:
    if truncated:
        raise AlertTooLarge([ErrorDetail("body", "is larger than the webhook body limit")])
    intent = reading.accepted()
    if strategy.passphrase_hash is not None and not passphrase_matches(
        intent.passphrase, strategy.passphrase_hash, key=secret_key
    ):
        raise AuthenticationError("passphrase: missing or does not match the strategy's passphrase")
    if not strategy.enabled:
        raise ConflictError("The strategy is disabled; the alert was recorded and not executed")
    return intent


def _signal_values(
    strategy: StrategySnapshot, stored_body: str, content_type: str | None, source_ip: str | None
) -> dict[str, Any]:
    # NUL cannot be stored in a PostgreSQL text column; keep the rest of the body verbatim.
    raw = stored_body.replace("\x00", "\ufffd")
    return {
        "user_id": strategy.user_id,
        "strategy_id": strategy.id,
        "received_at": now(),
        "source_ip": source_ip,
        "content_type": (content_type or "")[:100] or None,
        "raw_body": raw,
        "body_hash": hashlib.sha256(raw.encode()).hexdigest(),
        "intent": None,
        "ticker": None,
        "action": None,
        "status": ACCEPTED,
        "reason": None,
        "idempotency_key": None,
        "duplicate_of_id": None,
        "executed_at": None,
    }
