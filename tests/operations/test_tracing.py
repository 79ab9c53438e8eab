"""One trace per order, from the starter through the workflow, its activities and each
HTTP call to D1; the receiver's handling of D1's notifications is linked to it."""

from __future__ import annotations

from collections import defaultdict

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from contracts.card_order import Outcome
from contracts.card_order import workflow_id as workflow_id_for
from events.contract import hub_id
from observability import names
from tests.conftest import ISSUER_ID, new_request_id
from tests.operations.conftest import OpsStack
from tests.support.orders import TEST_PAN, sample_order

pytestmark = pytest.mark.asyncio(loop_scope="session")

CARD_SECRETS = (TEST_PAN, "JANE SAMPLE", "10 Main St")


def _by_trace(spans: list[ReadableSpan]) -> dict[int, list[ReadableSpan]]:
    out: dict[int, list[ReadableSpan]] = defaultdict(list)
    for s in spans:
        assert s.context is not None
        out[s.context.trace_id].append(s)
    return out


def _root(spans: list[ReadableSpan], rid: str) -> ReadableSpan:
    roots = [
        s
        for s in spans
        if s.name == "card_order.submit" and (s.attributes or {}).get(names.ATTR_ISSUER_REQUEST_ID) == rid
    ]
    assert len(roots) == 1, [s.name for s in spans]
    return roots[0]


async def test_one_trace_per_order_with_workflow_activity_http_and_linked_receiver_spans(
    ops: OpsStack, calm_emulator: OpsStack
) -> None:
    rids = [new_request_id("trace"), new_request_id("trace")]
    for rid in rids:
        await ops.orders.submit(sample_order(rid, card_id=f"card-{rid}"))
    for rid in rids:
        assert (await ops.orders.wait(ISSUER_ID, rid)).state.outcome == Outcome.DELIVERED

    spans = ops.finished_spans()
    traces = _by_trace(spans)
    span_by_id = {s.context.span_id: s for s in spans if s.context is not None}
    order_traces = []
    for rid in rids:
        root = _root(spans, rid)
        assert root.parent is None, "each order starts its own trace"
        assert root.context is not None
        trace_spans = traces[root.context.trace_id]
        order_traces.append(root.context.trace_id)
        names_in_trace = {s.name for s in trace_spans}
        # starter → workflow → activities → D1 HTTP calls, all in this one trace.
        for expected in (
            "StartWorkflow:CardOrderWorkflow",
            "RunWorkflow:CardOrderWorkflow",
            "StartActivity:submit_order",
            "RunActivity:submit_order",
            "D1 POST order",
            "HandleSignal:d1_notification",
            "CompleteWorkflow:CardOrderWorkflow",
        ):
            assert expected in names_in_trace, f"{expected} missing from the trace of {rid}: {sorted(names_in_trace)}"
        wid = workflow_id_for(ISSUER_ID, rid)
        for s in trace_spans:
            wf = (s.attributes or {}).get("temporalWorkflowID") or (s.attributes or {}).get(names.ATTR_WORKFLOW_ID)
            # The order's own spans, and its events handed to the issuer's event hub (events/).
            assert wf in (None, wid, hub_id(ISSUER_ID)), f"span {s.name} of another order in this trace"

        # The HTTP call is a CLIENT span under the activity that made it, with ids, not card data.
        http = next(s for s in trace_spans if s.name == "D1 POST order")
        assert http.kind == SpanKind.CLIENT
        assert http.parent is not None and span_by_id[http.parent.span_id].name == "RunActivity:submit_order"
        attrs = dict(http.attributes or {})
        assert attrs["http.response.status_code"] == 202
        assert attrs[names.ATTR_CARD_ID] == f"card-{rid}"
        assert attrs[names.ATTR_WORKFLOW_ID] == wid

        # Every notification signal handled by the workflow links to the receiver's trace.
        handled = [s for s in trace_spans if s.name == "HandleSignal:d1_notification"]
        assert handled
        for signal_span in handled:
            assert signal_span.links, "the signal handler span must link to the receiver's span"
            linked = span_by_id[signal_span.links[0].context.span_id]
            assert linked.name == "SignalWorkflow:d1_notification"
            assert linked.context is not None and linked.context.trace_id != root.context.trace_id
            assert linked.parent is not None
            route = span_by_id[linked.parent.span_id]
            assert route.name == "route D1 notification"
            route_attrs = dict(route.attributes or {})
            assert route_attrs[names.ATTR_ISSUER_REQUEST_ID] == rid
            assert route_attrs[names.ATTR_CARD_ID] == f"card-{rid}"
            assert route_attrs[names.ATTR_OPERATION_ID]
            assert route_attrs[names.ATTR_DELIVERY] == "signaled"
            assert route.parent is not None
            server = span_by_id[route.parent.span_id]
            assert server.kind == SpanKind.SERVER and server.name.startswith("POST /notifications/d1/v2/issuers/")
            assert dict(server.attributes or {})["http.response.status_code"] == 204
    assert len(set(order_traces)) == 2

    # No card data, names or addresses in any span (attributes, events, status).
    for s in spans:
        text = repr(dict(s.attributes or {})) + repr([dict(e.attributes or {}) for e in s.events]) + s.name
        text += s.status.description or ""
        for secret in CARD_SECRETS:
            assert secret not in text, f"{secret!r} leaked into span {s.name}"
