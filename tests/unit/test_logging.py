"""Structured logs: each line names its order (workflow id) and trace, and card data
never reaches it (the redaction layer runs before the formatter)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from observability.logs import TEXT_FORMAT, ContextFilter, JsonFormatter, TextFormatter, bind_workflow_id
from security.redaction import RedactingFilter
from tests.security.support import LEAK_PAN, LEAK_TRACK2, find_leaks

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
    assert "4111111111111111" not in first["message"] and "4111********1111" in first["message"]
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


# ---------------------------------------------------------------- exceptions and their chain

MASKED_PAN = LEAK_PAN[:4] + "********" + LEAK_PAN[-4:]
CARD_TEXT = f"pan {LEAK_PAN} cvv2=123 track {LEAK_TRACK2}"


def _raise_chained(kind: str) -> None:
    try:
        raise ValueError(f"cause: {CARD_TEXT}")
    except ValueError as cause:
        if kind == "from":
            raise RuntimeError(f"outer: {CARD_TEXT}") from cause
        raise RuntimeError(f"outer: {CARD_TEXT}")  # noqa: B904 - the implicit __context__ is the point


def _raise_clean_outer(kind: str) -> None:
    """The outer message is clean: only the cause carries card data (the JSON formatter used
    to print such a chain in clear, since the outer exception needed no stand-in)."""
    try:
        raise ValueError(f"cause: {CARD_TEXT}")
    except ValueError as cause:
        if kind == "from":
            raise RuntimeError("outer failed") from cause
        raise RuntimeError("outer failed")  # noqa: B904


def _assert_redacted_chain(text: str, *, outer_clean: bool) -> None:
    assert find_leaks("log", [text], include_name=False) == [], text
    assert "cvv2=123" not in text and LEAK_PAN not in text
    assert f"ValueError: cause: pan {MASKED_PAN} cvv2=*** track ***" in text
    assert ("RuntimeError: outer failed" if outer_clean else f"RuntimeError: outer: pan {MASKED_PAN}") in text
    assert "direct cause of the following exception" in text or "During handling of the above exception" in text


FORMATTERS = {
    "text": lambda: TextFormatter(TEXT_FORMAT),
    "plain-logging-formatter": lambda: logging.Formatter(TEXT_FORMAT),  # relies on the filter's exc_text
    "json": JsonFormatter,
}


@pytest.mark.parametrize("fmt", sorted(FORMATTERS))
@pytest.mark.parametrize("kind", ["from", "context"])
@pytest.mark.parametrize("raiser", [_raise_chained, _raise_clean_outer])
def test_logged_exceptions_are_redacted_with_their_chain(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler], fmt: str, kind: str, raiser: object
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(FORMATTERS[fmt]())
    try:
        raiser(kind)  # type: ignore[operator]
    except RuntimeError:
        logger.exception("order failed")
    out = stream.getvalue()
    text = json.loads(out)["exception"] if fmt == "json" else out
    _assert_redacted_chain(text, outer_clean=raiser is _raise_clean_outer)
    if kind == "from":
        assert "direct cause of the following exception" in text
    else:
        assert "During handling of the above exception" in text


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_formatters_redact_even_without_the_filter(fmt: str) -> None:
    """A handler someone sets up without RedactingFilter (or before install_log_redaction)
    still cannot print card data with our formatters."""
    formatter = FORMATTERS[fmt]()
    try:
        _raise_clean_outer("from")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "card %s", (LEAK_PAN,), sys.exc_info())
    record.workflow_id = record.trace_id = "-"
    out = formatter.format(record)
    text = json.loads(out)["exception"] if fmt == "json" else out
    _assert_redacted_chain(text, outer_clean=True)
    assert find_leaks("log", [out], include_name=False) == [] and MASKED_PAN in out
