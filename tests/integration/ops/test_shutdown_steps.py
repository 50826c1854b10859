"""Shutdown steps: one that hangs is cut off, one that fails is logged, and the rest still run."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from pinelab.config import Settings
from pinelab.db import Database
from pinelab.main import create_app
from pinelab.ops import shutdown
from pinelab.ops.shutdown import run_step


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[MutableMapping[str, Any]]]:
    """The shutdown module's log lines, through a fresh logger (a cached one skips the capture)."""
    with capture_logs() as captured:
        monkeypatch.setattr(shutdown, "log", structlog.get_logger("shutdown-test"))
        yield captured


async def test_a_step_that_finishes_in_time_counts_as_done(
    logs: list[MutableMapping[str, Any]],
) -> None:
    done: list[str] = []

    async def step() -> None:
        done.append("closed")

    assert await run_step("brokers", step(), seconds=1) is True

    assert done == ["closed"]
    assert logs == []


async def test_a_hanging_step_is_cut_off_at_its_limit_and_logged(
    logs: list[MutableMapping[str, Any]],
) -> None:
    started = asyncio.get_running_loop().time()

    finished = await run_step("database", asyncio.sleep(3600), seconds=0.05)

    assert finished is False
    assert asyncio.get_running_loop().time() - started < 2
    assert [(e["event"], e["log_level"], e["step"], e["seconds"]) for e in logs] == [
        ("shutdown_step_timed_out", "error", "database", 0.05)
    ]


async def test_a_failing_step_is_logged_with_its_error_never_raised(
    logs: list[MutableMapping[str, Any]],
) -> None:
    async def step() -> None:
        raise ConnectionResetError("broker session went away")

    finished = await run_step("brokers", step(), seconds=1)

    assert finished is False
    (entry,) = logs
    assert (entry["event"], entry["step"]) == ("shutdown_step_failed", "brokers")
    assert isinstance(entry["exc_info"], ConnectionResetError)


async def test_a_failing_step_does_not_stop_the_steps_after_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    application = create_app(settings)  # configures logging: capture only after it
    db: Database = application.state.db
    disposed: list[bool] = []
    dispose = db.dispose

    async def broken_close() -> None:
        raise RuntimeError("a broker session refused to close")

    async def recorded_dispose() -> None:
        disposed.append(True)
        await dispose()

    monkeypatch.setattr(application.state.brokers, "close", broken_close)
    monkeypatch.setattr(db, "dispose", recorded_dispose)

    with capture_logs() as logs:
        monkeypatch.setattr(shutdown, "log", structlog.get_logger("shutdown-test"))
        async with application.router.lifespan_context(application):
            pass

    failed = [(e["step"], str(e["exc_info"])) for e in logs if e["event"] == "shutdown_step_failed"]
    assert failed == [("brokers", "a broker session refused to close")]
    assert disposed == [True]
    assert [e["event"] for e in logs][-1] == "stopped"


async def test_startup_objects_are_kept_out_of_garbage_collection_while_the_app_runs(
    settings: Settings,
) -> None:
    application = create_app(settings)
    gc.unfreeze()
    async with application.router.lifespan_context(application):
        # The app, its modules and libraries: full collections no longer walk them.
        frozen_while_running = gc.get_freeze_count()
        assert len(gc.get_objects(generation=2)) < frozen_while_running
    assert frozen_while_running > 50_000
    assert gc.get_freeze_count() == 0  # collectable again once the app stopped
