"""CardOrderWorkflow on the time-skipping server, with production timing.

Each test drives one order through signals (what the receiver sends) and same-named
activity doubles (what D1 answers), and lets the server skip the hours and days between.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from contracts import card_order as api
from contracts import search_attributes as sa
from contracts.card_order import (
    ChangeRequest,
    ChangeStatus,
    Notification,
    OrderResult,
    OrderTiming,
    OrderView,
    Outcome,
    ReconcileRequest,
)
from d1.notifications import OperationNotification
from d1.order import Address
from tests.security.support import LEAK_CVV2, LEAK_PAN, LEAK_TRACK2, find_leaks, needles
from tests.support.notifications import HAPPY_STEPS, happy_sequence, operation
from tests.support.orders import sample_order
from tests.support.validation import validate_order
from tests.workflows.conftest import TASK_QUEUE, FastEnv, final_view, new_ids

NOTIFY = api.NOTIFICATION_SIGNAL


async def start(
    fast: FastEnv, prefix: str, timing: OrderTiming | None = None, shipment_type: str | None = "INDIVIDUAL"
) -> tuple[WorkflowHandle[Any, Any], str, str]:
    card, rid = new_ids(prefix)
    handle = await fast.client.start_workflow(
        api.WORKFLOW_TYPE,
        fast.order_input(card, rid, timing, shipment_type),
        id=api.workflow_id("TESTISS001", rid),
        task_queue=TASK_QUEUE,
        result_type=OrderResult,
    )
    await until(handle, lambda v: v.state.submitted)
    return handle, card, rid


async def view(handle: WorkflowHandle[Any, Any]) -> OrderView:
    result: OrderView = await handle.query(api.VIEW_QUERY, result_type=OrderView)
    return result


async def until(
    handle: WorkflowHandle[Any, Any], predicate: Callable[[OrderView], bool], within_s: float = 20
) -> OrderView:
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        current = await view(handle)
        if predicate(current):
            return current
        assert asyncio.get_running_loop().time() < deadline, f"condition not reached: {current.state}"
        await asyncio.sleep(0.05)


def ops(card: str, rid: str, steps: list[dict[str, Any]] | None = None) -> list[OperationNotification]:
    raw = steps if steps is not None else happy_sequence(card_id=card, request_id=rid)
    return [OperationNotification.model_validate(o) for o in raw]


async def notify(handle: WorkflowHandle[Any, Any], updates: list[OperationNotification]) -> None:
    for update in updates:
        await handle.signal(NOTIFY, Notification(operation=update))


# ---------------------------------------------------------------------------- lifecycle


async def test_happy_path_is_delivered_and_the_d1_body_is_sent_as_prepared(fast: FastEnv) -> None:
    handle, card, rid = await start(fast, "happy")
    await notify(handle, ops(card, rid))
    result = await final_view(handle)
    assert result.state.outcome is Outcome.DELIVERED
    assert [e.production_status for e in result.state.timeline[:5]] == HAPPY_STEPS
    assert fast.d1.submits[card] == [fast.order_input(card, rid).submission.body]  # type: ignore[union-attr]
    attrs = (await handle.describe()).typed_search_attributes
    assert attrs.get(sa.ORDER_OUTCOME) == "DELIVERED" and attrs.get(sa.SHIPMENT_STATUS) == "Delivered"


async def test_search_attributes_follow_the_milestones_one_notification_per_task(fast: FastEnv) -> None:
    """Notifications minutes apart (one workflow task each): the transient values
    (CARD_PROD_REQUESTED, CARD_PROD_READY, InTransit, OutForDelivery) cost no upsert, every
    milestone operators search for does, and the order ends with the same attributes."""
    handle, card, rid = await start(fast, "milestones")
    seen: list[tuple[str | None, str | None]] = []
    for applied, update in enumerate(ops(card, rid), start=1):
        await handle.signal(NOTIFY, Notification(operation=update))
        await until(handle, lambda v, n=applied: v.state.updates_applied >= n or v.state.finished)
        attrs = (await handle.describe()).typed_search_attributes
        seen.append((attrs.get(sa.PRODUCTION_STATUS), attrs.get(sa.SHIPMENT_STATUS)))
    await handle.result()
    assert seen == [
        (None, None),  # CARD_PROD_REQUESTED: transient
        ("DATA_PREPARED", None),
        ("DATA_PREPARED", None),  # CARD_PROD_READY: transient
        ("CARD_PROD_ONGOING", None),
        ("CARD_PROD_DONE", None),
        ("CARD_SHIPPED", "InfoReceived"),
        ("CARD_SHIPPED", "InfoReceived"),  # InTransit, OutForDelivery: transient
        ("CARD_SHIPPED", "InfoReceived"),
        ("CARD_SHIPPED", "Delivered"),
    ]
    attrs = (await handle.describe()).typed_search_attributes
    assert attrs.get(sa.ORDER_OUTCOME) == "DELIVERED" and attrs.get(sa.TRACKING_NUMBER)
    assert attrs.get(sa.DUE_DATE) is not None
    history = await handle.fetch_history()
    upserts = [e for e in history.events if e.HasField("upsert_workflow_search_attributes_event_attributes")]
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    # Five upserts (the milestones) instead of nine, and no patch marker.
    assert len(upserts) == 5 and markers == []


async def test_each_retry_resends_the_same_jwe(fast: FastEnv) -> None:
    card, rid = new_ids("retry")
    fast.d1.submit_failures[card] = ["unavailable", "unavailable"]
    handle = await fast.client.start_workflow(
        api.WORKFLOW_TYPE, fast.order_input(card, rid), id=api.workflow_id("TESTISS001", rid), task_queue=TASK_QUEUE
    )
    await until(handle, lambda v: v.state.submitted)
    bodies = fast.d1.submits[card]
    assert len(bodies) == 3 and all(b == bodies[0] for b in bodies)
    assert bodies[0]["encryptedData"] == fast.order_input(card, rid).submission.body["encryptedData"]  # type: ignore[union-attr]


async def test_silence_is_reconciled_after_24_hours_by_default(fast: FastEnv) -> None:
    handle, card, rid = await start(fast, "silent")
    assert OrderTiming().reconcile_after == timedelta(hours=24)
    fast.d1.statuses[card] = ops(card, rid)[3]  # D1 says: in production
    await fast.env.sleep(timedelta(hours=23))
    assert fast.d1.status_calls[card] == 0
    await fast.env.sleep(timedelta(hours=2))
    current = await until(handle, lambda v: v.state.reconciliations == 1)
    assert current.state.production_status == "CARD_PROD_ONGOING" and fast.d1.status_calls[card] == 1
    assert current.state.timeline[-1].source == "reconciliation"
    await fast.env.sleep(timedelta(hours=24))
    await until(handle, lambda v: v.state.reconciliations == 2)
    await handle.terminate("test done")


async def test_a_shipped_card_without_news_ends_shipped_30_days_later(fast: FastEnv) -> None:
    handle, card, rid = await start(fast, "quiet")
    assert OrderTiming().quiet_after_shipped == timedelta(days=30)
    shipped = ops(card, rid)[:7]  # ... CARD_SHIPPED / InTransit
    fast.d1.statuses[card] = shipped[-1]  # reconciliation only repeats what is known
    before = await fast.env.get_current_time()
    await notify(handle, shipped)
    result = await final_view(handle)  # the server skips the month
    elapsed = await fast.env.get_current_time() - before
    assert result.state.outcome is Outcome.SHIPPED
    assert result.state.outcome_reason == "carrier tracking quiet after shipping"
    assert timedelta(days=30) <= elapsed < timedelta(days=31)
    assert result.state.reconciliations >= 29  # one status check a day while quiet


async def test_a_card_on_hold_for_days_resumes_and_is_delivered(fast: FastEnv) -> None:
    handle, card, rid = await start(fast, "hold")
    steps = happy_sequence(card_id=card, request_id=rid)
    on_hold = operation("CARD_PROD_ON_HOLD", card_id=card, request_id=rid, reason="artwork check")
    await notify(handle, ops(card, rid, [*steps[:3], on_hold]))
    fast.d1.statuses[card] = ops(card, rid, [on_hold])[0]
    await fast.env.sleep(timedelta(days=3, hours=1))
    current = await until(handle, lambda v: v.state.reconciliations == 3)
    assert current.state.production_status == "CARD_PROD_ON_HOLD" and current.state.outcome is None
    await notify(handle, ops(card, rid, steps[3:]))
    result = await final_view(handle)
    assert result.state.outcome is Outcome.DELIVERED


# ---------------------------------------------------------------------------- refusals by D1


async def test_a_crypto_error_ends_the_order_crypto_rejected_for_operators_to_filter(fast: FastEnv) -> None:
    card, rid = new_ids("crypto")
    fast.d1.submit_failures[card] = [{"httpStatus": 400, "errorCode": "CRYPTO_ERROR", "error": "$.encryptedData"}]
    handle = await fast.client.start_workflow(
        api.WORKFLOW_TYPE,
        fast.order_input(card, rid),
        id=api.workflow_id("TESTISS001", rid),
        task_queue=TASK_QUEUE,
        result_type=OrderResult,
    )
    result = await final_view(handle)
    assert result.state.outcome is Outcome.CRYPTO_REJECTED
    reason = result.state.outcome_reason
    assert reason is not None and "re-submit with the current D1 key" in reason
    assert result.state.errors[0].error_code == "CRYPTO_ERROR" and len(fast.d1.submits[card]) == 1
    assert (await handle.describe()).typed_search_attributes.get(sa.ORDER_OUTCOME) == "CRYPTO_REJECTED"


async def test_d1_unreachable_past_the_give_up_window_ends_submit_failed(fast: FastEnv) -> None:
    card, rid = new_ids("giveup")
    fast.d1.submit_failures[card] = ["always-unavailable"]
    handle = await fast.client.start_workflow(
        api.WORKFLOW_TYPE,
        fast.order_input(card, rid, OrderTiming(submit_give_up_after=timedelta(hours=1))),
        id=api.workflow_id("TESTISS001", rid),
        task_queue=TASK_QUEUE,
        result_type=OrderResult,
    )
    result = await final_view(handle)
    assert result.state.outcome is Outcome.SUBMIT_FAILED and len(fast.d1.submits[card]) > 3


# ---------------------------------------------------------------------------- pull & change


async def test_cancel_before_shipment_ends_the_order_canceled(fast: FastEnv) -> None:
    handle, card, rid = await start(fast, "cancel")
    await notify(handle, ops(card, rid)[:2])
    record = await handle.execute_update(
        api.CANCEL_UPDATE, ChangeRequest(kind=api.CANCEL_UPDATE, note="customer request"), result_type=api.ChangeRecord
    )
    assert record.status is ChangeStatus.SENT and fast.d1.changes[card] == [{"type": "CANCEL"}]
    accepted = {
        "operationId": record.d1_operation_id,
        "operation": "UPDATE_ORDER",
        "status": "SUCCESSFUL",
        "cardId": card,
        "startTime": "2026-03-01T10:00:00Z",
        "issuerRequestId": rid,
        "details": {"status": "ACCEPTED", "type": "CANCEL"},
    }
    canceled = operation("CARD_PROD_CANCELED", card_id=card, request_id=rid, op_status="FAILED")
    await notify(handle, ops(card, rid, [accepted, canceled]))
    result = await final_view(handle)
    assert result.state.outcome is Outcome.CANCELED and result.state.changes[0].status is ChangeStatus.ACCEPTED


async def test_changes_after_shipment_are_refused_without_calling_d1(fast: FastEnv) -> None:
    handle, card, rid = await start(fast, "late-change")
    await notify(handle, ops(card, rid)[:6])
    await until(handle, lambda v: v.state.shipped)
    address = Address(line1="1 New St", city="Paris", zipCode="75001", countryCode="FR")
    for update, request in (
        (api.CANCEL_UPDATE, ChangeRequest(kind=api.CANCEL_UPDATE)),
        (api.REDIRECT_UPDATE, ChangeRequest(kind=api.REDIRECT_UPDATE, new_delivery_address=address)),
    ):
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await handle.execute_update(update, request, result_type=api.ChangeRecord)
        cause = info.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == api.CHANGE_REJECTED
        assert "already shipped" in cause.message
    assert fast.d1.changes[card] == []
    await handle.terminate("test done")


# ---------------------------------------------------------------------------- without the keys


async def test_a_client_without_the_keys_cannot_start_an_order(fast: FastEnv, caplog: pytest.LogCaptureFixture) -> None:
    card, rid = new_ids("plain-start")
    plain = await fast.plain.start_workflow(
        api.WORKFLOW_TYPE, fast.order_input(card, rid), id=api.workflow_id("TESTISS001", rid), task_queue=TASK_QUEUE
    )
    with pytest.raises(WorkflowFailureError) as info:
        await fast.client.get_workflow_handle(plain.id).result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "UnauthenticatedInput"
    assert fast.d1.submits[card] == []
    assert any("payload codec refused" in r.getMessage() for r in caplog.records)


async def test_a_client_without_the_keys_cannot_signal_or_change_an_order_and_it_goes_on(
    fast: FastEnv, caplog: pytest.LogCaptureFixture
) -> None:
    handle, card, rid = await start(fast, "plain-msg")
    steps = ops(card, rid)
    forged = OperationNotification.model_validate(operation("CARD_PROD_CANCELED", card_id=card, request_id=rid))
    plain = fast.plain.get_workflow_handle(handle.id)
    await plain.signal(
        NOTIFY, Notification(operation=forged)
    )  # unsealed: the codec refuses it, the SDK drops the signal
    with pytest.raises(WorkflowUpdateFailedError):
        await plain.execute_update(api.CANCEL_UPDATE, ChangeRequest(kind=api.CANCEL_UPDATE, note="forged"))
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(api.CANCEL_UPDATE)  # no (sealed) argument at all
    await plain.signal(api.RECONCILE_SIGNAL)  # a bare signal: refused in this version
    await handle.signal(api.RECONCILE_SIGNAL, ReconcileRequest(reason="test"))  # sealed: accepted
    await until(handle, lambda v: v.state.reconciliations == 1)
    await notify(handle, steps)
    result = await final_view(handle)
    assert result.state.outcome is Outcome.DELIVERED
    assert "CARD_PROD_CANCELED" not in [e.production_status for e in result.state.timeline]
    assert fast.d1.changes[card] == [] and fast.d1.status_calls[card] == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("payload codec refused" in m for m in messages)
    assert any("refused cancel without an authenticated argument" in m for m in messages)
    assert any("refused reconcile_now without an authenticated argument" in m for m in messages)


# ---------------------------------------------------------------------------- bad input, old input


async def test_malformed_card_data_started_directly_leaves_no_trace_of_it(
    fast: FastEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """Bypassing the starter: an input carrying (malformed) clear card data fails the order
    with field paths only; neither the worker's log nor the failure holds card data."""
    caplog.set_level(logging.DEBUG)
    card, rid = new_ids("malformed")
    raw = fast.order_input(card, rid).model_dump(mode="json")
    raw["submission"] = None
    raw["order"] = sample_order(
        rid,
        card_id=card,
        # Malformed, yet each value holds the distinctive one that find_leaks searches for.
        cardData={"pan": LEAK_PAN + "X", "exp": "3108", "cvv2": LEAK_CVV2 + "X"},
        trackData={"track2": LEAK_TRACK2 + "Z"},
    )
    planted = json.dumps(raw["order"])
    assert {n.label for n in needles() if n.pattern.search(planted)} >= {"PAN", "CVV2", "track2"}
    handle = await fast.client.start_workflow(
        api.WORKFLOW_TYPE, raw, id=api.workflow_id("TESTISS001", rid), task_queue=TASK_QUEUE
    )
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidInput"
    assert "order: Extra inputs are not permitted" in cause.message
    history = await handle.fetch_history()
    failure_texts = [str(e) for e in history.events if e.HasField("workflow_execution_failed_event_attributes")]
    decoded = [cause.message, *(str(c) for c in (cause.details or []))]
    records = [f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    assert find_leaks("worker log, failure", records + decoded + failure_texts) == []
    assert fast.d1.submits[card] == []


async def invalid_input(fast: FastEnv, rid: str, raw: dict[str, Any]) -> ApplicationError:
    """Start the order with a raw input; the workflow must end as non-retryable InvalidInput."""
    handle = await fast.client.start_workflow(
        api.WORKFLOW_TYPE, raw, id=api.workflow_id("TESTISS001", rid), task_queue=TASK_QUEUE
    )
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidInput" and cause.non_retryable
    return cause


async def test_an_order_in_the_shape_of_before_edge_encryption_is_refused_unread(fast: FastEnv) -> None:
    """The clear order as input (the shape before card data was encrypted at the edge): no
    worker encrypts it; the workflow ends as InvalidInput and nothing reaches D1."""
    card, rid = new_ids("clear-order")
    raw = fast.order_input(card, rid).model_dump(mode="json")
    raw["submission"] = None
    raw["order"] = validate_order(sample_order(rid, card_id=card)).model_dump(mode="json", exclude_none=True)
    cause = await invalid_input(fast, rid, raw)
    assert "order: Extra inputs are not permitted" in cause.message
    assert fast.d1.submits[card] == []


async def test_a_first_run_without_its_submission_is_refused(fast: FastEnv) -> None:
    card, rid = new_ids("no-submission")
    raw = fast.order_input(card, rid).model_dump(mode="json")
    raw["submission"] = None
    cause = await invalid_input(fast, rid, raw)
    assert "carries either its D1 submission or its D1 batch" in cause.message
    assert fast.d1.submits[card] == []
