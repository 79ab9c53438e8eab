"""D1's Card Activation call through the product (issue 23): the emulator plays D1, the
receiver forwards to a stand-in of the bank's CMS and records the activation on the order."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from contracts import activation as activation_api
from contracts import search_attributes as sa
from contracts.activation import ActivationFlag, ActivationRecord
from contracts.card_order import OrderView, Outcome
from receiver.activation import ActivationService
from security.sealing import EDGE
from tests.conftest import ISSUER_ID, TASK_QUEUE, new_request_id
from tests.lifecycle.conftest import Life
from tests.support.orders import sample_order
from tests.support.senders import as_role

pytestmark = pytest.mark.asyncio


async def record_of(life: Life, card_id: str) -> ActivationRecord:
    """The whole record (its result): the operators' view is ``CardOrders.activation`` (search attributes)."""
    summary = await life.orders.activation(ISSUER_ID, card_id)
    handle = life.client.get_workflow_handle(
        activation_api.workflow_id(ISSUER_ID, card_id), result_type=ActivationRecord
    )
    record = await handle.result()
    assert summary is not None and (summary.flag, summary.card_id) == (record.flag, card_id)
    return record


async def emulator_call(life: Life, card_id: str, timeout: float = 60) -> dict[str, Any]:
    """The emulator's activation call for the card, once it settled (D1 heard the answer)."""
    async with asyncio.timeout(timeout):
        while True:
            calls = (await life.emulator("GET", "/_emulator/activations")).json()["calls"]
            settled = [c for c in calls if c["cardId"] == card_id and c["attempts"]]
            if settled and settled[-1]["attempts"][-1] == 204:
                found: dict[str, Any] = settled[-1]
                return found
            await asyncio.sleep(0.05)


async def until(predicate: Any, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def order_in_production(life: Life, prefix: str) -> tuple[str, str]:
    """An order that stays in production a while (each of D1's steps 1.5 s): its request id and card."""
    rid = new_request_id(prefix)
    card = f"slow-{rid}"
    rule = {"match": {"cardIdPrefix": card}, "stepDelayMs": 1500}
    assert (await life.emulator("POST", "/_emulator/scenarios", json={"rules": [rule]})).status_code == 200
    await life.orders.submit(sample_order(rid, card_id=card))
    await life.orders.wait_for(ISSUER_ID, rid, lambda v: v.state.production_status is not None)
    return rid, card


async def test_an_activation_after_delivery_reaches_the_bank_and_is_recorded(life: Life) -> None:
    rid = new_request_id("act")
    card = f"emu-activated-{rid}"
    await life.orders.submit(sample_order(rid, card_id=card))
    view: OrderView = await life.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome == Outcome.DELIVERED

    # The scenario's cardholder activates after delivery: D1 calls the receiver, which calls the
    # bank, records the activation, then answers D1.
    call = await emulator_call(life, card)
    assert call["attempts"] == [204] and call["trigger"] == "ACTIVATED"
    record = await record_of(life, card)
    assert record.flag == ActivationFlag.ACTIVATED and not record.before_delivery
    assert record.cms_reference == life.cms.activated[(ISSUER_ID, card)]
    assert record.order_workflow_id == view.workflow_id and record.order_stage
    assert "DELIVERED" in record.order_stage
    bank_call = next(c for c in life.cms.calls if c["cardId"] == card)
    assert bank_call["idempotencyKey"] == f"activate:{ISSUER_ID}:{card}"
    assert bank_call["body"]["cardId"] == card and bank_call["body"]["activatedAt"]

    # Operators find it: the card's activation record by its search attributes.
    query = f'{activation_api.activations_query(ISSUER_ID, ActivationFlag.ACTIVATED)} AND CardId = "{card}"'
    found = [wf async for wf in life.client.list_workflows(query)]
    assert [wf.id for wf in found] == [activation_api.workflow_id(ISSUER_ID, card)]
    assert found[0].typed_search_attributes.get(sa.ACTIVATED_AT) is not None

    # D1 repeats its call: 204 again, the bank sees the same idempotency key, nothing new is recorded.
    repeats = life.cms.repeats
    again = await life.activate(card)
    assert again["attempts"] == [204]
    assert life.cms.repeats == repeats + 1
    assert (await record_of(life, card)).activated_at == record.activated_at
    record_id = activation_api.workflow_id(ISSUER_ID, card)
    runs = [wf async for wf in life.client.list_workflows(f'WorkflowId = "{record_id}"')]
    assert len(runs) == 1


async def test_the_bank_down_gives_d1_an_error_it_retries(life: Life) -> None:
    rid = new_request_id("down")
    card = f"card-{rid}"
    await life.orders.submit(sample_order(rid, card_id=card))
    await life.orders.wait(ISSUER_ID, rid)
    life.cms.down = True
    try:
        refused = await life.activate(card, maxAttempts=2)
        assert refused["attempts"] == [503, 503] and not refused["activated"]
        assert refused["answer"]["errorCode"] == "SERVICE_UNAVAILABLE"

        # D1 keeps retrying; the bank comes back during the retries.
        calls = len(life.cms.calls)
        retried = asyncio.create_task(life.activate(card, maxAttempts=20))
        await until(lambda: len(life.cms.calls) >= calls + 2)
    finally:
        life.cms.down = False
    result = await retried
    assert result["attempts"][0] == 503 and result["attempts"][-1] == 204
    assert (await record_of(life, card)).flag == ActivationFlag.ACTIVATED


async def test_an_activation_before_delivery_is_flagged_on_the_order(life: Life) -> None:
    rid = new_request_id("early")
    card = f"emu-early-activation-{rid}"
    await life.orders.submit(sample_order(rid, card_id=card))
    view = await life.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome == Outcome.DELIVERED  # the card still arrives
    activation = view.state.activation
    assert activation is not None and activation.flag == ActivationFlag.BEFORE_DELIVERY
    assert activation.order_stage is not None and "CARD_SHIPPED" in activation.order_stage
    entries = [e for e in view.state.timeline if e.operation == "ACTIVATE"]
    assert len(entries) == 1 and entries[0].reason and "before delivery" in entries[0].reason
    assert (ISSUER_ID, card) in life.cms.activated  # accepted: the program does not refuse them
    assert (await record_of(life, card)).flag == ActivationFlag.BEFORE_DELIVERY
    described = await life.orders.handle(ISSUER_ID, rid).describe()
    assert described.typed_search_attributes.get(sa.ACTIVATION) == ["ACTIVATED_BEFORE_DELIVERY"]

    # D1 repeats its call once the card arrived: answered 204, the flag stays.
    assert (await life.activate(card))["attempts"] == [204]
    assert (await record_of(life, card)).flag == ActivationFlag.BEFORE_DELIVERY


async def test_an_activation_before_delivery_is_refused_where_the_program_says_so(life: Life) -> None:
    rid, card = await order_in_production(life, "refuse")
    with life.lifecycle(refuseActivationBeforeDelivery=True):
        answer = await life.activate(card)
    assert answer["attempts"] == [403] and answer["answer"]["errorCode"] == "CARD_NOT_DELIVERED"
    assert not any(c["cardId"] == card for c in life.cms.calls)  # the bank was never asked
    view = await life.orders.wait_for(ISSUER_ID, rid, lambda v: v.state.activation is not None)
    assert view.state.activation is not None
    assert view.state.activation.flag == ActivationFlag.REFUSED_BEFORE_DELIVERY
    assert (await record_of(life, card)).flag == ActivationFlag.REFUSED_BEFORE_DELIVERY
    await life.orders.cancel(ISSUER_ID, rid, note="test done")


async def test_a_check_the_order_refuses_is_answered_retry_later_and_loses_nothing(life: Life) -> None:
    # A receiver whose check the order refuses: here it seals as the edge, as a receiver with the
    # wrong key would (or with its clock outside the messages' window). Ours to mend, not D1's:
    # D1 is told to retry (503) and the bank is not asked; the receiver as deployed then activates.
    rid, card = await order_in_production(life, "badchk")
    misconfigured = ActivationService.from_settings(
        life.local.receiver_settings(), as_role(life.client, EDGE), TASK_QUEUE
    )
    assert misconfigured is not None
    try:
        answer = await misconfigured.activate(ISSUER_ID, card)
    finally:
        await misconfigured.aclose()
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "30"
    assert json.loads(answer.body)["errorCode"] == "SERVICE_UNAVAILABLE"
    assert not any(c["cardId"] == card for c in life.cms.calls)
    view = await life.orders.status(ISSUER_ID, rid)
    assert view.state.activation is None  # nothing recorded: the order refused the message
    assert (await life.activate(card))["attempts"] == [204]  # D1's retry, through the receiver as deployed
    assert (ISSUER_ID, card) in life.cms.activated
    await life.orders.cancel(ISSUER_ID, rid, note="test done")


async def test_an_activation_right_behind_the_delivered_notification_is_not_flagged(life: Life) -> None:
    # The emulator's cardholder activates a moment after D1's Delivered notification was
    # acknowledged (emulator/simulator.py ACTIVATION_DELAY_S), every step at once: the order's
    # search attributes may still trail that notification, its history does not. Several cards
    # at once, so that a decision from the search attributes would flag at least one.
    rid = new_request_id("b2b")
    cards = [f"emu-activated-{rid}-{n}" for n in range(4)]
    rules = [{"match": {"cardIdPrefix": card}, "scenario": "ACTIVATED", "stepDelayMs": 0} for card in cards]
    assert (await life.emulator("POST", "/_emulator/scenarios", json={"rules": rules})).status_code == 200
    async with asyncio.timeout(120):
        await asyncio.gather(*(life.orders.submit(sample_order(f"{rid}-{n}", card_id=c)) for n, c in enumerate(cards)))
        calls = await asyncio.gather(*(emulator_call(life, card) for card in cards))
        records = await asyncio.gather(*(record_of(life, card) for card in cards))
    assert [c["attempts"] for c in calls] == [[204]] * len(cards)
    assert [r.flag for r in records] == [ActivationFlag.ACTIVATED] * len(cards), [r.order_stage for r in records]
    assert all((ISSUER_ID, card) in life.cms.activated for card in cards)
