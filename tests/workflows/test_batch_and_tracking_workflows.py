"""The D1 batch submission and the tracking hub on the time-skipping server."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from contracts import card_order, d1_batch, orphan_inbox
from contracts import card_tracking as tracking
from contracts.card_order import BatchMembership, Notification, OrderResult, OrderTiming, Outcome
from contracts.card_tracking import TrackingInput, TrackingRef, TrackingResult, TrackingView
from contracts.d1_batch import BatchCard, BatchInput, BatchReport
from d1.notifications import OperationNotification
from tests.workflows.conftest import ISSUER_ID, TASK_QUEUE, FastEnv, final_view, new_ids
from tests.workflows.test_card_order_workflow import until

# ------------------------------------------------------------------------------- batch


async def _start_card(fast: FastEnv, card: str, rid: str, batch_id: str, timing: OrderTiming | None = None) -> Any:
    inp = fast.order_input(card, rid, timing)
    assert inp.submission is not None
    member = inp.model_copy(
        update={
            "submission": None,
            "batch": BatchMembership(batch_workflow_id=batch_id, encryption_kid=inp.submission.encryption_kid),
        }
    )
    return await fast.client.start_workflow(
        card_order.WORKFLOW_TYPE,
        member,
        task_queue=TASK_QUEUE,
        id=card_order.workflow_id(ISSUER_ID, rid),
        result_type=OrderResult,
    )


async def test_a_batch_submits_once_and_tells_each_card_its_own_answer(own_fast: FastEnv) -> None:
    fast = own_fast
    ids = [new_ids("batch") for _ in range(3)]
    wids = [card_order.workflow_id(ISSUER_ID, rid) for _, rid in ids]
    batch_id = d1_batch.workflow_id(ISSUER_ID, d1_batch.batch_key(wids))
    refused_card = ids[1][0]
    fast.d1.batch_refusals[refused_card] = {"errorCode": "FIELD_INVALID_VALUE", "error": "$.cards[1].services.delivery"}
    handles = [await _start_card(fast, card, rid, batch_id) for card, rid in ids]
    cards = [
        BatchCard(
            workflow_id=w,
            card_id=card,
            issuer_request_id=rid,
            item={"cardId": card, **fast.order_input(card, rid).submission.body},
        )  # type: ignore[union-attr]
        for w, (card, rid) in zip(wids, ids, strict=True)
    ]
    batches_before = len(fast.d1.batches)
    report: BatchReport = await fast.client.execute_workflow(
        d1_batch.WORKFLOW_TYPE,
        BatchInput(issuer_id=ISSUER_ID, cards=cards),
        id=batch_id,
        task_queue=TASK_QUEUE,
        result_type=BatchReport,
    )
    assert (report.cards, report.accepted, report.refused, report.failed) == (3, 2, 1, 0)
    assert len(fast.d1.batches) == batches_before + 1 and [i["cardId"] for i in fast.d1.batches[-1]] == [
        card for card, _ in ids
    ]
    accepted = await until(handles[0], lambda v: v.state.submitted)
    assert accepted.state.operation_id == f"op-{ids[0][0]}" and accepted.state.outcome is None
    rejected = await final_view(handles[1])
    assert rejected.state.outcome is Outcome.REJECTED
    assert rejected.state.errors[0].error_code == "FIELD_INVALID_VALUE"
    assert rejected.state.errors[0].error == "$.cards[1].services.delivery"
    assert fast.d1.submits[ids[0][0]] == []  # the card itself never called D1
    for h in (handles[0], handles[2]):
        await h.terminate("test done")


async def test_a_card_whose_batch_never_answers_ends_submit_failed(fast: FastEnv) -> None:
    card, rid = new_ids("orphan-batch")
    handle = await _start_card(fast, card, rid, d1_batch.workflow_id(ISSUER_ID, "never-started"))
    result = await final_view(handle)  # the server skips the 24 h give-up window
    assert result.state.outcome is Outcome.SUBMIT_FAILED
    assert "no answer from the D1 batch" in (result.state.errors[0].error or "")


# ---------------------------------------------------------------------------- tracking


def _tracking_op(card: str, kind: str, status: str, op_status: str, shipment: str | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {"status": status, "trackingType": kind, "productionSite": "BUREAU-7"}
    if shipment:
        details["shipment"] = {"carrier": "dhl", "trackingNumber": "JD0001", "status": shipment}
    return {
        "operationId": f"trk-{card}",
        "operation": "STANDALONE_TRACKING",
        "status": op_status,
        "startTime": "2026-03-02T08:00:00Z",
        "cardId": card,
        "details": details,
    }


async def _track(fast: FastEnv, prefix: str, kind: str, *, reconcile: bool = True) -> tuple[Any, str]:
    card, _ = new_ids(prefix)
    request: dict[str, Any] = {"trackingType": kind}
    if kind == "SHIPMENT":
        request["shipment"] = {"carrier": "dhl", "trackingNumber": "JD0001"}
    handle = await fast.client.start_workflow(
        tracking.WORKFLOW_TYPE,
        TrackingInput(
            ref=TrackingRef(issuer_id=ISSUER_ID, card_id=card, tracking_type=kind),  # type: ignore[arg-type]
            request=request,
            reconcile=reconcile,
        ),
        id=tracking.workflow_id(ISSUER_ID, card, kind),
        task_queue=TASK_QUEUE,
        result_type=TrackingResult,
    )
    return handle, card


async def _ended(handle: Any) -> TrackingView:
    """The tracking's view once it ended: its result says how only, the view is read by query."""
    result: TrackingResult = await handle.result()
    view: TrackingView = await handle.query(tracking.VIEW_QUERY, result_type=TrackingView)
    assert result.workflow_id == handle.id and result.outcome is view.state.outcome
    assert result.outcome_reason == view.state.outcome_reason
    return view


async def test_shipment_tracking_from_duplicated_shuffled_updates_ends_delivered(fast: FastEnv) -> None:
    handle, card = await _track(fast, "trk-ship", "SHIPMENT")
    updates = [_tracking_op(card, "SHIPMENT", "CARD_SHIPPED", "PENDING")] + [
        _tracking_op(card, "SHIPMENT", "CARD_SHIPPED", "SUCCESSFUL", s)
        for s in ("InfoReceived", "InTransit", "OutForDelivery", "Delivered")
    ]
    twice = updates * 2
    random.Random(7).shuffle(twice)
    for update in twice:
        await handle.signal(
            tracking.NOTIFICATION_SIGNAL, Notification(operation=OperationNotification.model_validate(update))
        )
    view = await _ended(handle)
    assert view.state.outcome is Outcome.DELIVERED
    assert fast.d1.trackings[card] == [
        {"trackingType": "SHIPMENT", "shipment": {"carrier": "dhl", "trackingNumber": "JD0001"}}
    ]
    assert view.state.duplicates_ignored == len(updates)
    assert [e.shipment_status for e in view.state.timeline if e.shipment_status][-1] == "Delivered"


async def test_production_tracking_ends_when_the_card_left(fast: FastEnv) -> None:
    handle, card = await _track(fast, "trk-prod", "PRODUCTION")
    update = _tracking_op(card, "PRODUCTION", "CARD_SHIPPED", "SUCCESSFUL")
    await handle.signal(
        tracking.NOTIFICATION_SIGNAL, Notification(operation=OperationNotification.model_validate(update))
    )
    view = await _ended(handle)
    assert view.state.outcome is Outcome.SHIPPED and view.state.production_site == "BUREAU-7"


async def test_return_tracking_ends_returned(fast: FastEnv) -> None:
    handle, card = await _track(fast, "trk-ret", "RETURN")
    update = _tracking_op(card, "RETURN", "CARD_RETURNED", "SUCCESSFUL")
    await handle.signal(
        tracking.NOTIFICATION_SIGNAL, Notification(operation=OperationNotification.model_validate(update))
    )
    view = await _ended(handle)
    assert view.state.outcome is Outcome.RETURNED


async def test_without_a_status_endpoint_silence_is_noted_not_reconciled(fast: FastEnv) -> None:
    handle, card = await _track(fast, "trk-quiet", "SHIPMENT", reconcile=False)
    await fast.env.sleep(timedelta(days=2, hours=1))
    view: TrackingView = await handle.query(tracking.VIEW_QUERY, result_type=TrackingView)
    assert view.state.reconciliations == 0 and fast.d1.status_calls[card] == 0
    description = await handle.describe()
    assert description.status is not None and description.status.name == "RUNNING"
    await handle.terminate("test done")


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("workflow_type", [d1_batch.WORKFLOW_TYPE, tracking.WORKFLOW_TYPE, orphan_inbox.WORKFLOW_TYPE])
async def test_a_malformed_input_ends_the_workflow_with_field_paths(fast: FastEnv, workflow_type: str) -> None:
    """Every long-running type reads its input itself (workflows/inputs.py): a wrong shape
    fails the workflow once, naming the field, instead of failing every workflow task."""
    _card, rid = new_ids("badinput")
    handle = await fast.client.start_workflow(
        workflow_type,
        {"issuer_id": 42, "cards": "x", "ref": [], "entries": 7},
        id=f"bad-input-{workflow_type}-{rid}",
        task_queue=TASK_QUEUE,
    )
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(handle.result(), timeout=30)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidInput" and cause.non_retryable
    assert "does not match" in cause.message and ":" in cause.message.split("does not match", 1)[1]
