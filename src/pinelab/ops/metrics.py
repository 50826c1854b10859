"""Prometheus metrics: one `Metrics` per app (its own registry), hooks of one line each.

Services receive the `Metrics` of their process (from the composition root) and call one
method where a thing happens; a `Metrics()` built without an app works the same, so services
and tests never need a running server. Queue depth and age are read from the database when
`/metrics` is scraped, so they are true across every API and worker process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy import func, select

from pinelab.clock import now
from pinelab.db import Database
from pinelab.jobs.models import Job

log = structlog.get_logger(__name__)

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
UNMATCHED_ROUTE: Final = "unmatched"
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
REQUEST_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


@dataclass(frozen=True)
class QueueStats:
    """How many jobs wait, run and were given up, and how long the oldest due one waits."""

    queued: int
    running: int
    dead: int
    oldest_age_seconds: float


async def queue_stats(db: Database) -> QueueStats:
    """Count jobs by status and age the oldest due one (two indexed queries)."""
    moment = now()
    depth = (
        select(Job.status, func.count())
        .where(Job.status.in_(("queued", "running", "dead")))
        .group_by(Job.status)
    )
    oldest = select(func.min(Job.run_at)).where(Job.status == "queued", Job.run_at <= moment)
    async with db.session() as session:
        counts = {str(row[0]): int(row[1]) for row in await session.execute(depth)}
        oldest_run_at = (await session.execute(oldest)).scalar_one_or_none()
    age = (moment - oldest_run_at).total_seconds() if oldest_run_at is not None else 0.0
    return QueueStats(
        queued=counts.get("queued", 0),
        running=counts.get("running", 0),
        dead=counts.get("dead", 0),
        oldest_age_seconds=round(max(0.0, age), 3),
    )


class Metrics:
    """Every PineLab metric, registered in one registry (a fresh one unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._alert_children: dict[str, Counter] = {}
        self._build_http()
        self._build_alerts_and_orders()
        self._build_jobs()

    def _build_http(self) -> None:
        reg = self.registry
        self.requests = Counter(
            "pinelab_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=reg,
        )
        self.request_seconds = Histogram(
            "pinelab_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            buckets=REQUEST_BUCKETS,
            registry=reg,
        )
        self.errors = Counter(
            "pinelab_errors", "Error answers and unhandled errors, by type", ["type"], registry=reg
        )

    def _build_alerts_and_orders(self) -> None:
        reg = self.registry
        self.alerts_received = Counter(
            "pinelab_alerts_received", "Webhook alerts received, before any check", registry=reg
        )
        self.alerts = Counter(
            "pinelab_alerts",
            "Stored alerts by outcome (accepted, rejected, duplicate)",
            ["outcome"],
            registry=reg,
        )
        self.orders = Counter(
            "pinelab_orders", "Orders that moved to each status", ["status"], registry=reg
        )
        self.alert_to_submit_seconds = Histogram(
            "pinelab_alert_to_submit_seconds",
            "From an alert's arrival to its order's submission answer",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.reconciliation_fixes = Counter(
            "pinelab_reconciliation_fixes",
            "Orders, fills or positions that reconciliation corrected",
            registry=reg,
        )

    def _build_jobs(self) -> None:
        reg = self.registry
        self.job_retries = Counter(
            "pinelab_job_retries",
            "Job attempts that failed and were rescheduled",
            ["kind"],
            registry=reg,
        )
        self.dead_letters = Counter(
            "pinelab_dead_letters", "Jobs given up (dead-lettered)", ["kind"], registry=reg
        )
        self.queue_depth = Gauge(
            "pinelab_job_queue_depth",
            "Jobs queued, running or given up (dead), by status",
            ["status"],
            registry=reg,
        )
        self.queue_oldest_age = Gauge(
            "pinelab_job_queue_oldest_age_seconds",
            "Age of the oldest job that is due and not yet taken (0 when none)",
            registry=reg,
        )

    def request_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:  # labels() costs microseconds: resolve each combination once
            children = (
                self.requests.labels(method, route, str(status)),
                self.request_seconds.labels(method, route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def error(self, error_type: str) -> None:
        """Count one error answer (or unhandled error) of this type."""
        self.errors.labels(error_type).inc()

    def alert_received(self) -> None:
        """Count one webhook alert received."""
        self.alerts_received.inc()

    def alert_stored(self, outcome: str) -> None:
        """Count one stored alert by its outcome: accepted, rejected or duplicate."""
        child = self._alert_children.get(outcome)
        if child is None:
            child = self._alert_children[outcome] = self.alerts.labels(outcome)
        child.inc()

    def order_status(self, status: str) -> None:
        """Count one order moving to `status`."""
        self.orders.labels(status).inc()

    def order_submitted(self, alert_received_at: datetime) -> None:
        """Record the time from an alert's arrival to its order's submission."""
        self.alert_to_submit_seconds.observe(max(0.0, (now() - alert_received_at).total_seconds()))

    def job_retried(self, kind: str) -> None:
        """Count one failed attempt rescheduled for later."""
        self.job_retries.labels(kind).inc()

    def job_dead(self, kind: str) -> None:
        """Count one job given up."""
        self.dead_letters.labels(kind).inc()

    def reconciliation_fixed(self, count: int) -> None:
        """Count the corrections one reconciliation run made."""
        self.reconciliation_fixes.inc(count)

    async def refresh_queue(self, db: Database) -> QueueStats:
        """Read queue depth and the oldest due job's age from the database."""
        stats = await queue_stats(db)
        for status in ("queued", "running", "dead"):
            self.queue_depth.labels(status).set(getattr(stats, status))
        self.queue_oldest_age.set(stats.oldest_age_seconds)
        return stats

    def render(self) -> bytes:
        """Return the registry in the Prometheus text format."""
        return generate_latest(self.registry)


async def refresh_quietly(metrics: Metrics, db: Database) -> None:
    """Refresh the queue gauges; when the database does not answer, keep the last values."""
    try:
        await metrics.refresh_queue(db)
    except Exception as exc:
        log.warning("metrics_queue_refresh_failed", error_type=type(exc).__name__)


class MetricsServer:
    """Serve `GET /metrics` alone on its own port (PINELAB_METRICS_PORT), apart from the API."""

    def __init__(self, metrics: Metrics, db: Database, *, host: str, port: int) -> None:
        self.metrics = metrics
        self.db = db
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)

    async def stop(self) -> None:
        """Stop listening."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)).strip():
                pass
            method, target, *_ = request_line.decode("latin-1").split() or ["", ""]
            if method == "GET" and target.split("?", 1)[0] == "/metrics":
                await refresh_quietly(self.metrics, self.db)
                status, content_type, body = "200 OK", CONTENT_TYPE, self.metrics.render()
            else:
                status, content_type, body = "404 Not Found", "text/plain", b"not found\n"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
