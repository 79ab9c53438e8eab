"""Ids of the product's own format pass redaction unchanged, whatever digits they hold:
trace and span ids, workflow ids, run ids, D1 operation ids, UUIDs; in free text and
through the processes' own JSON log set-up (observability/logs.py). A card number next
to them is still masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext

from contracts import card_order, card_tracking, d1_batch, orphan_inbox
from d1.card_data import holds_pan, luhn_valid, pan_spans
from observability.logs import bind_workflow_id, configure_logging
from security.redaction import redact_mapping, redact_text
from settings import TelemetrySettings

TRACE_IDS = st.integers(1, 2**128 - 1).map(lambda n: format(n, "032x"))
SPAN_IDS = st.integers(1, 2**64 - 1).map(lambda n: format(n, "016x"))
UUIDS = st.uuids().map(str)  # Temporal run ids, D1 operation ids (uuid4 in D1's examples)
HEX_UUIDS = st.uuids().map(lambda u: u.hex)  # correlation ids, token ids
ISSUERS = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=10, max_size=10)
# Request and card ids the way the product writes them: the local stack's date-time stamp,
# the benchmark's sequence numbers, an epoch and a sequence, a plain counter.
REQUEST_IDS = st.one_of(
    st.builds(lambda dt: f"req-0001-{dt:%Y%m%d-%H%M%S}", st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31))),
    st.builds(lambda tag, i: f"{tag}-b{i:06d}", st.sampled_from(["bench", "r7", "s"]), st.integers(0, 999_999)),
    st.builds(lambda t, i: f"order-{t}-{i:03d}", st.integers(10**9, 2 * 10**9), st.integers(0, 999)),
    st.integers(0, 10**12 - 1).map(lambda n: f"req-{n}"),
)
WORKFLOW_IDS = st.one_of(
    st.builds(card_order.workflow_id, ISSUERS, REQUEST_IDS),
    st.builds(card_tracking.workflow_id, ISSUERS, REQUEST_IDS.map(lambda r: f"card-{r}"), st.just("DELIVERY")),
    st.builds(
        lambda issuer, wids: d1_batch.workflow_id(issuer, d1_batch.batch_key(wids)),
        ISSUERS,
        st.lists(REQUEST_IDS, min_size=1, max_size=3),
    ),
    st.builds(orphan_inbox.workflow_id, ISSUERS),
)
IDS = st.one_of(TRACE_IDS, UUIDS, HEX_UUIDS, WORKFLOW_IDS)


def test_the_trace_id_that_used_to_be_garbled() -> None:
    trace_id = "c499294f657855102905325558aedc63"  # holds 657855102905325558, Luhn-valid
    assert redact_text(f"trace={trace_id}") == f"trace={trace_id}" and not holds_pan(trace_id)


@settings(max_examples=500)
@given(IDS, st.sampled_from(["{}", "id {} seen", "/orders/{}?x=1", '{{"id": "{}"}}', "{}-01", "run={}&op={}"]))
def test_ids_pass_free_text_unchanged(an_id: str, form: str) -> None:
    text = form.format(an_id, an_id)
    assert redact_text(text) == text
    assert not holds_pan(text) and pan_spans(text) == []
    assert redact_mapping({"workflowId": an_id, "ids": [an_id]}) == {"workflowId": an_id, "ids": [an_id]}


@settings(max_examples=500)
@given(SPAN_IDS)
def test_span_ids_pass_unless_they_are_a_card_number_by_every_rule(span_id: str) -> None:
    """A span id is 16 hex digits. One in 1,800 has no letter: a 16-digit number, which in
    free text cannot be told from a card number when it passes the Luhn check too."""
    text = f"span {span_id} ended"
    if span_id.isdigit() and luhn_valid(span_id):
        assert redact_text(text) == f"span {span_id[:4]}{'*' * 8}{span_id[-4:]} ended"
    else:
        assert redact_text(text) == text
    assert redact_mapping({"span_id": span_id, "trace_id": span_id * 2}) == {
        "span_id": span_id,
        "trace_id": span_id * 2,
    }


def _pan(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


@settings(max_examples=100)
@given(IDS, IDS, st.builds(_pan, st.from_regex(r"[3-6][0-9]{14}", fullmatch=True)), st.sampled_from(["", " ", "-"]))
def test_a_card_number_between_ids_is_masked_and_the_ids_are_not(left: str, right: str, pan: str, sep: str) -> None:
    written = sep.join(pan[i : i + 4] for i in range(0, 16, 4))
    out = redact_text(f"{left} card {written} {right}")
    assert out == f"{left} card {pan[:4]}{'*' * 8}{pan[-4:]} {right}"


@contextmanager
def _json_logs() -> Iterator[io.StringIO]:
    """The processes' own JSON log set-up, writing into a buffer; the logging state is
    restored afterwards."""
    root = logging.getLogger()
    handlers, level, factory = list(root.handlers), root.level, logging.getLogRecordFactory()
    stream = io.StringIO()
    try:
        handler = configure_logging(TelemetrySettings(log_format="json"), "ids-test")
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        yield stream
    finally:
        for current in list(root.handlers):
            root.removeHandler(current)
        for old in handlers:
            root.addHandler(old)
        root.setLevel(level)
        logging.setLogRecordFactory(factory)


def test_ids_pass_the_json_log_set_up_unchanged() -> None:
    logger = logging.getLogger("tests.unit.redaction_ids")
    with _json_logs() as stream:

        @settings(max_examples=300)
        @given(TRACE_IDS, SPAN_IDS, WORKFLOW_IDS, UUIDS, UUIDS)
        def check(trace_id: str, span_id: str, workflow_id: str, run_id: str, operation_id: str) -> None:
            context = SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=False)
            stream.seek(0)
            stream.truncate()
            with trace.use_span(NonRecordingSpan(context)), bind_workflow_id(workflow_id):
                logger.warning("order %s run %s operation %s trace %s", workflow_id, run_id, operation_id, trace_id)
            line = json.loads(stream.getvalue())
            assert line["trace_id"] == trace_id and line["workflow_id"] == workflow_id
            assert line["message"] == f"order {workflow_id} run {run_id} operation {operation_id} trace {trace_id}"

        check()
        with bind_workflow_id(card_order.workflow_id("TESTISS001", "req-1")):
            logger.warning("card %s", "4929 7316 4058 2292")
        assert json.loads(stream.getvalue().splitlines()[-1])["message"] == "card 4929********2292"
