"""OpenTelemetry tracing: one trace per card order, from the starter to D1 and back.

The shape of a trace (a new root span per order, the interceptor on the client only, a
CLIENT span per D1 request, the receiver's spans linked from ``HandleSignal``) is described
in docs/operations.md ("Traces: one per order"). Spans carry identifiers only and leave
through ``security.redaction.RedactingSpanExporter``; without an exporter configured there
is no provider, no interceptor, no cost.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from temporalio import activity
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor

from observability import names
from observability.metrics import ProductMetrics
from security.redaction import RedactingSpanExporter
from settings import TelemetrySettings

INSTRUMENTATION = "d1_card_orders"
SERVICE_PREFIX = "d1-card-orders"

TEST_SPAN_FILE_VARIABLE = "TELEMETRY_TEST_SPAN_FILE"

_provider: TracerProvider | None = None


def otlp_endpoint() -> str | None:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")


def build_tracer_provider(settings: TelemetrySettings, service: str) -> TracerProvider | None:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporters: list[SpanExporter] = []
    if otlp_endpoint():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter())
    if settings.console_traces:
        exporters.append(ConsoleSpanExporter())
    # Test-only hook (tests/security/test_leak.py): every span as the product made it, before
    # redaction, one JSON line each, so that the leak test can show no span carries card data.
    raw_span_file = os.environ.get(TEST_SPAN_FILE_VARIABLE)
    if not exporters and not raw_span_file:
        return None
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win when set (Resource.create reads them).
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": f"{SERVICE_PREFIX}-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(exporter)))
    if raw_span_file:
        out = open(raw_span_file, "a", encoding="utf-8")  # open for the life of the process
        raw = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
        provider.add_span_processor(SimpleSpanProcessor(raw))
    return provider


def use_tracer_provider(provider: TracerProvider | None, *, set_global: bool = False) -> None:
    """Tests pass an in-memory provider without touching OpenTelemetry's process-global one,
    which can be set only once per process."""
    global _provider
    _provider = provider
    if provider is not None and set_global:
        trace.set_tracer_provider(provider)


def tracing_enabled() -> bool:
    """False while no provider is set, here or globally: every span would be a no-op."""
    return _provider is not None or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def tracer() -> trace.Tracer:
    return (_provider or trace.get_tracer_provider()).get_tracer(INSTRUMENTATION)


def client_interceptors() -> list[Interceptor]:
    return [TracingInterceptor(tracer())] if _provider is not None else []


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def order_attributes(
    *, issuer_id: str, card_id: str | None = None, issuer_request_id: str | None = None, workflow_id: str | None = None
) -> dict[str, str]:
    ids = {
        names.ATTR_CARD_ID: card_id,
        names.ATTR_ISSUER_REQUEST_ID: issuer_request_id,
        names.ATTR_WORKFLOW_ID: workflow_id,
    }
    return {names.ATTR_ISSUER_ID: issuer_id, **{name: value for name, value in ids.items() if value}}


@contextmanager
def order_submission_span(*, issuer_id: str, card_id: str, issuer_request_id: str, workflow_id: str) -> Iterator[Span]:
    """The root of one order's trace (a new trace, linked to the caller's span if any)."""
    caller = trace.get_current_span().get_span_context()
    with tracer().start_as_current_span(
        "card_order.submit",
        context=otel_context.Context(),
        kind=SpanKind.PRODUCER,
        links=[Link(caller)] if caller.is_valid else None,
        attributes=order_attributes(
            issuer_id=issuer_id, card_id=card_id, issuer_request_id=issuer_request_id, workflow_id=workflow_id
        ),
    ) as span:
        yield span


@dataclass
class D1Call:
    span: Span
    status_code: int | None = None

    def answered(self, status_code: int) -> None:
        self.status_code = status_code
        self.span.set_attribute("http.response.status_code", status_code)
        if status_code >= 500:
            self.span.set_status(Status(StatusCode.ERROR, f"HTTP {status_code}"))


@contextmanager
def observe_d1_call(
    method: str, endpoint: str, headers: MutableMapping[str, str], *, issuer_id: str, card_id: str | None = None
) -> Iterator[D1Call]:
    """A CLIENT span and the latency/status metrics around one HTTP request to D1.

    ``endpoint`` is a low-cardinality name given by the caller: paths D1 does not document
    are configurable, so they cannot be recognised."""
    attrs: dict[str, Any] = {
        "http.request.method": method,
        names.ATTR_ENDPOINT: endpoint,
        names.ATTR_ISSUER_ID: issuer_id,
    }
    if card_id is not None:
        attrs[names.ATTR_CARD_ID] = card_id
    if activity.in_activity():
        attrs[names.ATTR_WORKFLOW_ID] = activity.info().workflow_id or ""
    started = time.perf_counter()
    with tracer().start_as_current_span(
        f"D1 {method} {endpoint}", kind=SpanKind.CLIENT, attributes=attrs, record_exception=False
    ) as span:
        propagate.inject(headers)
        call = D1Call(span)
        outcome = "error"
        try:
            yield call
            outcome = str(call.status_code) if call.status_code is not None else "error"
        except BaseException as exc:
            outcome = "timeout" if "timeout" in str(exc).lower() else "error"
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            ProductMetrics.current().d1_call(endpoint, outcome, time.perf_counter() - started)


@contextmanager
def notification_operation_span(
    issuer_id: str,
    *,
    card_id: str,
    issuer_request_id: str | None,
    operation_id: str | None,
    operation: str,
    production_status: str | None,
    shipment_status: str | None,
) -> Iterator[Span]:
    more = {
        names.ATTR_OPERATION: operation,
        names.ATTR_OPERATION_ID: operation_id,
        names.ATTR_PRODUCTION_STATUS: production_status,
        names.ATTR_SHIPMENT_STATUS: shipment_status,
    }
    attrs = order_attributes(issuer_id=issuer_id, card_id=card_id, issuer_request_id=issuer_request_id)
    attrs |= {name: value for name, value in more.items() if value}
    with tracer().start_as_current_span("route D1 notification", kind=SpanKind.INTERNAL, attributes=attrs) as span:
        yield span


class NotificationTracingMiddleware:
    """A SERVER span per notification request: the child of an incoming ``traceparent``, else
    its own trace, which the order's trace links to through the signal."""

    PATH_PREFIX = "/notifications/"

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Without tracing, the carrier, the extraction and the no-op span were ~45 µs of the
        # event loop per notification for nothing (docs/benchmarks.md, finding 5b).
        if (
            scope.get("type") != "http"
            or not str(scope.get("path", "")).startswith(self.PATH_PREFIX)
            or not tracing_enabled()
        ):
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        parent = propagate.extract(carrier)
        path = str(scope["path"])
        issuer = path.rstrip("/").split("/")[-2] if path.count("/") >= 5 else ""
        attrs = {"http.request.method": scope.get("method", ""), "url.path": path, names.ATTR_ISSUER_ID: issuer}
        with tracer().start_as_current_span(
            "POST /notifications/d1/v2/issuers/{issuerId}/cards", context=parent, kind=SpanKind.SERVER, attributes=attrs
        ) as span:

            async def traced_send(message: dict[str, Any]) -> None:
                if message.get("type") == "http.response.start":
                    status = int(message.get("status", 0))
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
                await send(message)

            await self.app(scope, receive, traced_send)
