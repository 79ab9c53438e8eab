"""Prometheus metrics of webhook delivery (observability/metrics.py conventions: Temporal's meter,
``_total`` appended to counters on ``/metrics``). The hub sets two gauges itself, replay-safe:
``webhook_backlog_events`` and ``webhook_endpoint_failing`` (events/delivery_loop.py, ``Deliveries.gauges``)."""

from __future__ import annotations

from temporalio import activity
from temporalio.common import MetricMeter

ATTEMPTS = "webhook_delivery_attempts"  # labels issuer_id, endpoint_id, result (2xx, http_500, timeout, error)
FAILURES = "webhook_delivery_failures"  # attempts that did not get a 2xx
LAG = "webhook_delivery_lag_seconds"  # histogram: emitted_at to a 2xx answer
BACKLOG = "webhook_backlog_events"  # gauge (the hub)
FAILING = "webhook_endpoint_failing"  # gauge (the hub)
EMITTED = "events_emitted"  # events the worker's card workflows emitted (label issuer_id)


class DeliveryMetrics:
    def __init__(self, meter: MetricMeter) -> None:
        self._attempts = meter.create_counter(ATTEMPTS, "Webhook delivery attempts")
        self._failures = meter.create_counter(FAILURES, "Webhook delivery attempts without a 2xx answer")
        self._lag = meter.create_histogram_float(LAG, "From an event's emission to its delivery", "s")
        self._emitted = meter.create_counter(EMITTED, "Events emitted by the card workflows")

    @classmethod
    def current(cls) -> DeliveryMetrics:
        return cls(activity.metric_meter())

    def attempt(self, issuer_id: str, endpoint_id: str, result: str, lag_s: float | None) -> None:
        labels = {"issuer_id": issuer_id, "endpoint_id": endpoint_id}
        self._attempts.add(1, {**labels, "result": result})
        if lag_s is None:
            self._failures.add(1, labels)
        else:
            self._lag.record(max(lag_s, 0.0), labels)

    def emitted(self, issuer_id: str, count: int) -> None:
        self._emitted.add(count, {"issuer_id": issuer_id})
