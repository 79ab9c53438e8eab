"""Structured logs: each line names its order (workflow id) and trace, and card data
never reaches it (the redaction layer runs before the formatter)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from observability.logs import TEXT_FORMAT, ContextFilter, JsonFormatter, bind_workflow_id
from security.redaction import RedactingFilter

WID = "card-order:TESTISS001:req-logs-1"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter("test"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.operations.logging")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)


def test_json_lines_carry_workflow_and_trace_ids_and_no_card_data(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(JsonFormatter())
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("route D1 notification") as span, bind_workflow_id(WID):
        logger.info("order body had pan=%s by mistake", "4111111111111111")
    logger.warning("from a workflow", extra={"temporal_workflow": {"workflow_id": "card-order:X:other"}})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["workflow_id"] == WID
    assert first["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert first["service"] == "test" and first["level"] == "INFO"
    assert "4111111111111111" not in first["message"] and "411111" in first["message"]
    assert second["workflow_id"] == "card-order:X:other" and second["trace_id"] is None


def test_text_lines_carry_the_ids_too(captured: tuple[logging.Logger, io.StringIO, logging.Handler]) -> None:
    logger, stream, handler = captured
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    with bind_workflow_id(WID):
        logger.info("hello")
    logger.info("no order here")
    lines = stream.getvalue().splitlines()
    assert f"[wf={WID} trace=-] hello" in lines[0]
    assert "[wf=- trace=-] no order here" in lines[1]
