"""Sealed messages replayed by someone with Temporal access and no key (issue 19).

The attacker holds a plain Temporal client (no codec, no key): it can read any order's
history and send signals, updates and starts. It copies sealed payloads from real histories
and replays them where they were not made for. Each replay is refused by the workflow
(docs/security.md, "Messages bound to their order"), D1 (the emulator) receives nothing for
the victim, and the victim's order goes on to DELIVERED. A role's own key cannot produce
another role's message either: the receiver cannot ask for a change, an operator cannot
forge a D1 notification.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import RawValue, SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from contracts import card_order as api
from contracts import d1_batch
from contracts import search_attributes as sa
from contracts.card_order import PENDING_CHANGE, ChangeRequest, Notification, OrderView, Outcome
from contracts.messages import MESSAGE_REFUSED
from d1.notifications import OperationNotification
from starter.d1_batches import BatchLimits
from tests.conftest import ISSUER_ID, TASK_QUEUE, Stack, new_request_id, temporal_address
from tests.support.notifications import operation
from tests.support.orders import sample_order
from tests.support.senders import as_role
from workflows.inputs import INPUT_REFUSED

NEW_ADDRESS = {
    "firstName": "Mallory",
    "lastName": "Sample",
    "line1": "1 Drop Box Lane",
    "city": "Springfield",
    "state": "IL",
    "zipCode": "62701",
    "countryCode": "US",
}


@pytest.fixture
async def attacker(stack: Stack) -> Client:
    """Everything a client can have without the product's keys."""
    return await Client.connect(
        temporal_address(stack.client), namespace=stack.client.namespace, data_converter=pydantic_data_converter
    )


async def paced(stack: Stack, card_id: str, step_ms: int) -> None:
    """Slow production for this card: time to act before it ships."""
    resp = await stack.emulator(
        "POST", "/_emulator/scenarios", json={"rules": [{"match": {"cardIdPrefix": card_id}, "stepDelayMs": step_ms}]}
    )
    assert resp.status_code == 200, resp.text


async def order(stack: Stack, name: str, step_ms: int = 300) -> tuple[str, str]:
    rid = new_request_id(name)
    card = f"rp-{rid}"
    await paced(stack, card, step_ms)
    await stack.orders.submit(sample_order(rid, card_id=card))
    await stack.orders.wait_for(ISSUER_ID, rid, lambda v: v.state.production_status is not None, timeout=60)
    return rid, card


async def card_counters(stack: Stack, card: str) -> dict[str, Any]:
    counters: dict[str, Any] = (await stack.emulator_stats())["cards"].get(card, {})
    return counters


async def p_and_c_requests(stack: Stack) -> int:
    return int((await stack.emulator_stats())["pullAndChangeRequests"])


async def sealed_payloads(
    attacker: Client, workflow_id: str, event_type: int, name: str | None = None
) -> list[Payload]:
    """The sealed argument payloads of ``event_type`` events in a history, as anyone can read them."""
    found: list[Payload] = []
    async for event in attacker.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type != event_type:
            continue
        if event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attrs = event.workflow_execution_signaled_event_attributes
            if name is None or attrs.signal_name == name:
                found.extend(attrs.input.payloads)
        elif event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            if name is None or request.input.name == name:
                found.extend(request.input.args.payloads)
        elif event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            found.extend(event.workflow_execution_started_event_attributes.input.payloads)
    assert found, f"no {name or event_type} payload in the history of {workflow_id}"
    assert all(p.metadata.get("encoding") == b"binary/encrypted" for p in found)
    return found


async def signals_named(attacker: Client, workflow_id: str, name: str) -> int:
    count = 0
    async for event in attacker.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            count += event.workflow_execution_signaled_event_attributes.signal_name == name
    return count


async def refused_update(handle: Any, update: str, payload: Payload) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(update, RawValue(payload))
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def delivered(stack: Stack, rid: str) -> OrderView:
    view = await asyncio.wait_for(stack.orders.wait(ISSUER_ID, rid), timeout=120)
    assert view.state.outcome is Outcome.DELIVERED
    return view


async def test_another_orders_redirect_is_refused_on_the_victims_order(stack: Stack, attacker: Client) -> None:
    own_rid, _ = await order(stack, "attacker")
    victim_rid, victim_card = await order(stack, "victim", step_ms=400)
    await stack.orders.redirect(ISSUER_ID, own_rid, NEW_ADDRESS, note="my own parcel")
    [redirect] = await sealed_payloads(
        attacker,
        api.workflow_id(ISSUER_ID, own_rid),
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
        api.REDIRECT_UPDATE,
    )
    before, counters = await p_and_c_requests(stack), await card_counters(stack, victim_card)

    victim = attacker.get_workflow_handle(api.workflow_id(ISSUER_ID, victim_rid))
    cause = await refused_update(victim, api.REDIRECT_UPDATE, redirect)
    assert cause.type == MESSAGE_REFUSED and cause.non_retryable

    view = await delivered(stack, victim_rid)
    assert view.state.changes == []
    assert await p_and_c_requests(stack) == before
    assert (await card_counters(stack, victim_card))["requests"] == counters["requests"]


async def test_a_notification_is_refused_as_a_cancel_argument(stack: Stack, attacker: Client) -> None:
    rid, _ = await order(stack, "notif-as-cancel", step_ms=400)
    wid = api.workflow_id(ISSUER_ID, rid)
    notifications = await sealed_payloads(
        attacker, wid, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, api.NOTIFICATION_SIGNAL
    )
    before = await p_and_c_requests(stack)
    handle = attacker.get_workflow_handle(wid)
    # Sealed for this very order, by the receiver: still no change request.
    cause = await refused_update(handle, api.CANCEL_UPDATE, notifications[0])
    assert cause.type == MESSAGE_REFUSED
    view = await delivered(stack, rid)
    assert view.state.changes == [] and view.state.outcome is not Outcome.CANCELED
    assert await p_and_c_requests(stack) == before


async def test_an_old_change_request_resent_on_the_same_order_is_refused(stack: Stack, attacker: Client) -> None:
    rid, _ = await order(stack, "resent", step_ms=500)
    wid = api.workflow_id(ISSUER_ID, rid)
    await stack.orders.accelerate(ISSUER_ID, rid, note="customer in a hurry")
    # The personalization center's answer may settle the change before the update returns
    # (both land in one workflow task under load): wait for a settled status, not a new one.
    await stack.orders.wait_for(ISSUER_ID, rid, lambda v: v.state.changes[-1].status not in PENDING_CHANGE, timeout=60)
    [sent] = await sealed_payloads(
        attacker, wid, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, api.ACCELERATE_UPDATE
    )
    before = await p_and_c_requests(stack)
    cause = await refused_update(attacker.get_workflow_handle(wid), api.ACCELERATE_UPDATE, sent)
    assert cause.type == MESSAGE_REFUSED
    view = await delivered(stack, rid)
    assert len(view.state.changes) == 1
    assert await p_and_c_requests(stack) == before


async def test_a_batch_result_is_refused_on_another_order(stack: Stack, attacker: Client) -> None:
    victim_rid, victim_card = await order(stack, "batch-victim", step_ms=300)
    run = uuid.uuid4().hex[:8]
    rids = [f"rbatch-{run}-{i}" for i in range(2)]
    prepared = [stack.orders.edge.prepare(sample_order(r, card_id=f"c-{r}"), timing=stack.orders.timing) for r in rids]
    results = await stack.orders.start_many(prepared, d1_batches=BatchLimits())
    assert all(r.submitted for r in results)
    member = await stack.orders.wait_for(ISSUER_ID, rids[0], lambda v: v.state.operation_id is not None, timeout=60)
    # D1's first notification can give the member its operation id before the batch's signal
    # is in its history (CI): wait for the signal itself.
    async with asyncio.timeout(60):
        while not await signals_named(attacker, member.workflow_id, d1_batch.RESULT_SIGNAL):
            await asyncio.sleep(0.2)
    [result] = await sealed_payloads(
        attacker, member.workflow_id, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, d1_batch.RESULT_SIGNAL
    )
    victim_view = await stack.orders.status(ISSUER_ID, victim_rid)
    counters = await card_counters(stack, victim_card)
    await attacker.get_workflow_handle(api.workflow_id(ISSUER_ID, victim_rid)).signal(
        d1_batch.RESULT_SIGNAL, RawValue(result)
    )
    view = await delivered(stack, victim_rid)
    assert view.state.operation_id == victim_view.state.operation_id
    assert (await card_counters(stack, victim_card))["requests"] == counters["requests"]


async def test_the_receivers_key_cannot_ask_for_a_change(stack: Stack) -> None:
    rid, _ = await order(stack, "receiver-cancel", step_ms=400)
    before = await p_and_c_requests(stack)
    receiver = as_role(stack.client, "receiver").get_workflow_handle(api.workflow_id(ISSUER_ID, rid))
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await receiver.execute_update(api.CANCEL_UPDATE, ChangeRequest(kind="cancel"), result_type=api.ChangeRecord)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == MESSAGE_REFUSED
    assert "wrong_sender" in cause.message
    view = await delivered(stack, rid)
    assert view.state.changes == [] and await p_and_c_requests(stack) == before


async def test_an_operators_key_cannot_forge_a_d1_notification(stack: Stack) -> None:
    rid, card = await order(stack, "operator-notif", step_ms=300)
    forged = OperationNotification.model_validate(
        operation("CARD_PROD_CANCELED", card_id=card, request_id=rid, op_status="FAILED")
    )
    mallory = as_role(stack.client, "operator:mallory").get_workflow_handle(api.workflow_id(ISSUER_ID, rid))
    await mallory.signal(api.NOTIFICATION_SIGNAL, Notification(operation=forged))
    view = await delivered(stack, rid)
    assert "CARD_PROD_CANCELED" not in [e.production_status for e in view.state.timeline]


async def test_a_start_copied_from_another_order_ends_as_input_refused(stack: Stack, attacker: Client) -> None:
    """Squatting with a sealed input of another order: the workflow ends at once, marked for
    operators, without the card id it claimed."""
    rid, card = await order(stack, "squat-source", step_ms=20)
    [start] = await sealed_payloads(
        attacker, api.workflow_id(ISSUER_ID, rid), EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    )
    squat_rid = new_request_id("squatted")
    squat: WorkflowHandle[Any, Any] = await attacker.start_workflow(
        api.WORKFLOW_TYPE,
        RawValue(start),  # type: ignore[arg-type]
        id=api.workflow_id(ISSUER_ID, squat_rid),
        task_queue=TASK_QUEUE,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(sa.CARD_ID, card), SearchAttributePair(sa.ISSUER_ID, ISSUER_ID)]
        ),
    )
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(squat.result(), timeout=60)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InputRefused" and cause.non_retryable
    attrs = (await squat.describe()).typed_search_attributes
    assert attrs.get(sa.ORDER_OUTCOME) == INPUT_REFUSED and attrs.get(sa.CARD_ID) is None
    await delivered(stack, rid)
