"""What the receiver does per notification beyond its answer (docs/benchmarks.md, receiver
tail): D1's idle connections outlive a lull, and the per-request span costs nothing while
tracing is off, and is still made when it is on."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from observability import tracing
from receiver.app import create_app
from settings import ReceiverSettings
from stack.servers import freeze_startup_heap, server_config
from tests.unit.test_receiver_answers import FakeRouter, body, post


def test_idle_connections_outlive_a_lull_of_notifications() -> None:
    # uvicorn's default (5 s) made D1 re-handshake mutual TLS after every pause of 5 s.
    config = server_config(create_app(FakeRouter()), ReceiverSettings(), {})  # type: ignore[arg-type]
    assert config.timeout_keep_alive >= 60
    tuned = server_config(create_app(FakeRouter()), ReceiverSettings(keep_alive_s=300), {})  # type: ignore[arg-type]
    assert tuned.timeout_keep_alive == 300


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        tracing.use_tracer_provider(None)


async def test_with_tracing_each_notification_has_its_server_span(spans: InMemorySpanExporter) -> None:
    assert tracing.tracing_enabled()
    router = FakeRouter()
    assert (await post(router, body())).status_code == 204
    server = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert len(server) == 1 and server[0].attributes is not None
    assert server[0].attributes["http.response.status_code"] == 204


async def test_without_tracing_the_answer_is_the_same() -> None:
    assert not tracing.tracing_enabled()
    router = FakeRouter()
    assert (await post(router, body(2))).status_code == 204 and len(router.delivered) == 2


def test_the_startup_heap_is_left_out_of_full_collections() -> None:
    before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        # Everything alive now (this test process's modules included) is out of the collector's reach.
        assert gc.get_freeze_count() > before and gc.get_count()[2] == 0
    finally:
        gc.unfreeze()
