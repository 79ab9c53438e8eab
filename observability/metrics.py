"""Prometheus metrics: the Temporal SDK's own metrics and the product's counters on one endpoint.

Why everything goes through Temporal's ``MetricMeter`` instead of a second metrics
library: the SDK already serves a Prometheus endpoint from its Runtime, and counters
recorded by *workflow* code must be replay-safe, which only ``workflow.metric_meter()``
is (it records nothing while a worker replays history). Activities use
``activity.metric_meter()``, the receiver the meter of its client's Runtime; all of them
land on the process's ``/metrics`` (``TELEMETRY_METRICS_PORT``).
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client
from temporalio.common import MetricCounter, MetricHistogramFloat, MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from observability import names
from settings import TelemetrySettings


def build_runtime(settings: TelemetrySettings, service: str) -> Runtime | None:
    if settings.metrics_port is None:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"{settings.metrics_host}:{settings.metrics_port}",
                counters_total_suffix=True,
                durations_as_seconds=True,
                histogram_bucket_overrides={
                    names.D1_REQUEST_DURATION: list(names.D1_DURATION_BUCKETS),
                    **{name: list(names.SERVICE_DURATION_BUCKETS) for name in names.SERVICE_DURATIONS},
                },
            ),
            global_tags={"service": service},
        )
    )


# The HELP text of each counter on /metrics.
_DESCRIPTIONS = {
    names.NOTIFICATIONS_RECEIVED: "D1 notification operations received",
    names.NOTIFICATIONS_LATE: "D1 notifications for orders that already ended",
    names.RECEIVER_ERRORS: "Notifications the receiver could not process",
    names.PAYLOADS_REFUSED: "Payloads refused by the payload codec",
    names.NOTIFICATIONS_UNKNOWN: "D1 notifications for no known order",
    names.D1_REQUESTS: "HTTP requests to D1 by endpoint and status code",
    names.CARD_ACTIVATIONS: "D1 Card Activation calls by outcome (activations before delivery included)",
    names.ACTIVATIONS_BEFORE_DELIVERY: "Card activations before the order reached delivered (refused or not)",
}


class ProductMetrics:
    def __init__(self, meter: MetricMeter) -> None:
        self._meter = meter
        self._counters: dict[str, MetricCounter] = {}
        self._duration: MetricHistogramFloat | None = None

    @classmethod
    def for_client(cls, client: Client) -> ProductMetrics:
        runtime = client.service_client.config.runtime or Runtime.default()
        return cls(runtime.metric_meter)

    @classmethod
    def current(cls) -> ProductMetrics:
        """Inside an activity: its meter (labels: namespace, task queue, activity type).
        Anywhere else: the process's default Runtime."""
        if activity.in_activity():
            return cls(activity.metric_meter())
        return cls(Runtime.default().metric_meter)

    def _count(self, name: str, **attributes: str) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = self._meter.create_counter(name, _DESCRIPTIONS[name])
        counter.add(1, attributes)

    def notification_received(self, issuer_id: str, operation: str) -> None:
        self._count(names.NOTIFICATIONS_RECEIVED, issuer_id=issuer_id, operation=operation)

    def notification_late(self, issuer_id: str) -> None:
        self._count(names.NOTIFICATIONS_LATE, issuer_id=issuer_id, seen_by="receiver")

    def receiver_error(self, issuer_id: str, kind: str) -> None:
        """``kind``: ``temporal_unavailable`` or ``message_refused`` (answered 503), ``bug`` (500)."""
        self._count(names.RECEIVER_ERRORS, issuer_id=issuer_id, kind=kind)

    def activation(self, issuer_id: str, outcome: str) -> None:
        self._count(names.CARD_ACTIVATIONS, issuer_id=issuer_id, outcome=outcome)
        if outcome in ("activated_before_delivery", "refused_before_delivery"):
            refused = str(outcome.startswith("refused")).lower()
            self._count(names.ACTIVATIONS_BEFORE_DELIVERY, issuer_id=issuer_id, refused=refused)

    def payload_refused(self, reason: str) -> None:
        self._count(names.PAYLOADS_REFUSED, reason=reason)

    def notification_unknown(self, issuer_id: str) -> None:
        self._count(names.NOTIFICATIONS_UNKNOWN, issuer_id=issuer_id)

    def d1_call(self, endpoint: str, status_code: str, seconds: float) -> None:
        self._count(names.D1_REQUESTS, endpoint=endpoint, status_code=status_code)
        if self._duration is None:
            self._duration = self._meter.create_histogram_float(
                names.D1_REQUEST_DURATION, "Latency of HTTP requests to D1", "s"
            )
        self._duration.record(seconds, {"endpoint": endpoint, "status_code": status_code})
