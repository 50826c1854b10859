"""The metrics API: one registry per Metrics object, one-line hooks, Prometheus text out."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from pinelab.clock import FrozenClock
from pinelab.ops.metrics import Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def test_two_metrics_objects_never_share_counts() -> None:
    first, second = Metrics(), Metrics()
    first.alert_received()
    first.alert_received()
    second.alert_received()
    assert _samples(first)[("pinelab_alerts_received_total", ())] == 2
    assert _samples(second)[("pinelab_alerts_received_total", ())] == 1


def test_hooks_count_by_their_label() -> None:
    metrics = Metrics()
    metrics.alert_stored("accepted")
    metrics.alert_stored("duplicate")
    metrics.alert_stored("accepted")
    metrics.order_status("filled")
    metrics.job_retried("execute_signal")
    metrics.job_dead("execute_signal")
    metrics.reconciliation_fixed(3)
    metrics.error("ValidationError")
    samples = _samples(metrics)
    assert samples[("pinelab_alerts_total", (("outcome", "accepted"),))] == 2
    assert samples[("pinelab_alerts_total", (("outcome", "duplicate"),))] == 1
    assert samples[("pinelab_orders_total", (("status", "filled"),))] == 1
    assert samples[("pinelab_job_retries_total", (("kind", "execute_signal"),))] == 1
    assert samples[("pinelab_dead_letters_total", (("kind", "execute_signal"),))] == 1
    assert samples[("pinelab_reconciliation_fixes_total", ())] == 3
    assert samples[("pinelab_errors_total", (("type", "ValidationError"),))] == 1


def test_alert_to_submit_latency_is_measured_from_the_alert_arrival(
    frozen_clock: FrozenClock,
) -> None:
    metrics = Metrics()
    received_at = frozen_clock.now() - timedelta(seconds=0.3)
    metrics.order_submitted(received_at)
    samples = _samples(metrics)
    assert samples[("pinelab_alert_to_submit_seconds_count", ())] == 1
    assert samples[("pinelab_alert_to_submit_seconds_bucket", (("le", "0.25"),))] == 0
    assert samples[("pinelab_alert_to_submit_seconds_bucket", (("le", "0.5"),))] == 1


def test_request_is_counted_by_route_template_and_timed() -> None:
    metrics = Metrics()
    metrics.request_finished("POST", "/webhooks/{token}", 202, 0.004)
    samples = _samples(metrics)
    labels = (("method", "POST"), ("route", "/webhooks/{token}"), ("status", "202"))
    assert samples[("pinelab_http_requests_total", labels)] == 1
    timing = (("method", "POST"), ("route", "/webhooks/{token}"))
    assert samples[("pinelab_http_request_duration_seconds_count", timing)] == 1
