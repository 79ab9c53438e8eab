"""Pull & change on the real stack (Temporal dev server, worker, receiver, emulator over HTTP).

Orders here get their own pace through an emulator scenario rule (``stepDelayMs`` for their
cardId), so a test can act while the card is in a given production stage.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from contracts.card_order import ChangeRecord, ChangeStatus, OrderView, Outcome
from security.codec import load_codec
from starter.api import CardOrders, ChangeRejected
from temporal_client import data_converter
from tests.conftest import ISSUER_ID, TASK_QUEUE, Stack, new_request_id
from tests.support.orders import sample_order
from tests.support.validation import InvalidOrder

NEW_ADDRESS = {
    "firstName": "Jane",
    "lastName": "Sample",
    "line1": "5 Harbour Rd",
    "city": "Boston",
    "state": "MA",
    "zipCode": "02108",
    "countryCode": "US",
}


async def paced(stack: Stack, card_id: str, step_ms: int) -> None:
    resp = await stack.emulator(
        "POST", "/_emulator/scenarios", json={"rules": [{"match": {"cardIdPrefix": card_id}, "stepDelayMs": step_ms}]}
    )
    assert resp.status_code == 200, resp.text


async def p_and_c_requests(stack: Stack) -> int:
    return int((await stack.emulator_stats())["pullAndChangeRequests"])


async def approved(stack: Stack, codec_keys_file: Path, rid: str, asked: ChangeRecord) -> ChangeRecord:
    """A new delivery address waits for a second operator (docs/operations.md, "Four eyes on
    an address change"): another operator than the one who asked approves it."""
    assert asked.status is ChangeStatus.AWAITING_APPROVAL, asked
    client = Client(
        stack.client.service_client,
        namespace=stack.client.namespace,
        data_converter=data_converter(load_codec(codec_keys_file, seal_as="operator:approver")),
    )
    approver = CardOrders(client, task_queue=TASK_QUEUE, edge=stack.orders.edge)
    return await approver.approve_change(ISSUER_ID, rid, asked.change_id)


def acknowledged(view: OrderView) -> bool:
    return view.state.production_status is not None


def decided(view: OrderView) -> bool:
    return bool(view.state.changes) and view.state.changes[-1].status not in (ChangeStatus.REQUESTED, ChangeStatus.SENT)


async def test_cancel_before_shipment_ends_the_order_canceled(stack: Stack) -> None:
    rid = new_request_id("cancel")
    card = f"pc-{rid}"
    await paced(stack, card, 400)
    await stack.orders.submit(sample_order(rid, card_id=card))
    await stack.orders.wait_for(ISSUER_ID, rid, acknowledged, timeout=30)
    before = await p_and_c_requests(stack)

    record = await stack.orders.cancel(ISSUER_ID, rid, note="customer asked to stop")
    assert record.type == "CANCEL" and record.status in (ChangeStatus.SENT, ChangeStatus.ACCEPTED)
    assert record.d1_operation_id

    view = await stack.orders.wait(ISSUER_ID, rid)
    st = view.state
    assert st.outcome == Outcome.CANCELED
    assert st.production_status == "CARD_PROD_CANCELED"
    assert st.errors == []  # a cancel the issuer asked for is not an error
    change = st.changes[0]
    assert change.status == ChangeStatus.ACCEPTED and change.note == "customer asked to stop"
    assert change.decided_at_status in ("CARD_PROD_REQUESTED", "DATA_PREPARED", "CARD_PROD_READY", "CARD_PROD_ONGOING")
    kinds = [(e.operation, e.production_status, e.change_outcome) for e in st.timeline]
    assert ("UPDATE_ORDER", None, "ACCEPTED") in kinds
    assert kinds[-1] == ("PRODUCE", "CARD_PROD_CANCELED", None)
    assert kinds.index(("UPDATE_ORDER", None, "ACCEPTED")) < len(kinds) - 1
    assert await p_and_c_requests(stack) == before + 1
    assert "CARD_SHIPPED" not in [e.production_status for e in st.timeline]


async def test_cancel_after_shipment_is_rejected_without_calling_d1(stack: Stack) -> None:
    rid = new_request_id("late-cancel")
    card = f"pc-{rid}"
    await paced(stack, card, 300)
    await stack.orders.submit(sample_order(rid, card_id=card))
    await stack.orders.wait_for(
        ISSUER_ID, rid, lambda v: v.state.shipped and v.state.outcome is None, timeout=30, poll=0.05
    )
    before = await p_and_c_requests(stack)
    with pytest.raises(ChangeRejected, match="already shipped"):
        await stack.orders.cancel(ISSUER_ID, rid)
    with pytest.raises(ChangeRejected, match="already shipped"):
        await stack.orders.redirect(ISSUER_ID, rid, NEW_ADDRESS)
    assert await p_and_c_requests(stack) == before  # the validator refused: D1 never called
    view = await stack.orders.status(ISSUER_ID, rid)
    assert view.state.changes == []

    final = await stack.orders.wait(ISSUER_ID, rid)
    assert final.state.outcome == Outcome.DELIVERED
    with pytest.raises(ChangeRejected, match="finished"):
        await stack.orders.cancel(ISSUER_ID, rid)
    assert await p_and_c_requests(stack) == before


async def test_redirect_changes_the_address_the_emulator_ships_to(stack: Stack, codec_keys_file: Path) -> None:
    rid = new_request_id("redirect")
    card = f"pc-{rid}"
    await paced(stack, card, 700)
    await stack.orders.submit(sample_order(rid, card_id=card))
    await stack.orders.wait_for(ISSUER_ID, rid, acknowledged, timeout=30, poll=0.05)

    asked = await stack.orders.redirect(ISSUER_ID, rid, NEW_ADDRESS, note="moved")
    record = await approved(stack, codec_keys_file, rid, asked)
    assert record.redirected_to == "Boston, US"
    view = await stack.orders.wait_for(ISSUER_ID, rid, decided, timeout=30, poll=0.05)
    assert view.state.changes[0].status == ChangeStatus.ACCEPTED, view.state.changes
    # The rest of the walk goes faster: accelerate once the redirect is settled.
    await stack.orders.accelerate(ISSUER_ID, rid)

    final = await stack.orders.wait(ISSUER_ID, rid)
    assert final.state.outcome == Outcome.DELIVERED
    assert [c.status for c in final.state.changes] == [ChangeStatus.ACCEPTED, ChangeStatus.ACCEPTED]
    assert final.state.shipment is not None and final.state.shipment.carrier == "fedex"  # express carrier
    emulated = (await stack.emulator("GET", "/_emulator/orders", params={"cardId": card})).json()["orders"]
    shipped_to = emulated[-1]["_emulator"]["deliveryAddress"]
    assert shipped_to["city"] == "Boston" and shipped_to["line1"] == "5 Harbour Rd"
    assert [c["type"] for c in emulated[-1]["_emulator"]["changes"]] == ["REDIRECT", "ACCELERATE"]


async def test_redirect_too_late_is_refused_by_the_personalization_center(stack: Stack, codec_keys_file: Path) -> None:
    rid = new_request_id("refused")
    card = f"pc-{rid}"
    await paced(stack, card, 600)
    await stack.orders.submit(sample_order(rid, card_id=card))
    await stack.orders.wait_for(
        ISSUER_ID, rid, lambda v: v.state.production_status == "CARD_PROD_ONGOING", timeout=30, poll=0.05
    )
    record = await approved(stack, codec_keys_file, rid, await stack.orders.redirect(ISSUER_ID, rid, NEW_ADDRESS))
    assert record.status in (ChangeStatus.SENT, ChangeStatus.REFUSED)
    view = await stack.orders.wait_for(ISSUER_ID, rid, decided, timeout=30, poll=0.05)
    change = view.state.changes[0]
    assert change.status == ChangeStatus.REFUSED
    assert change.reason and "too late" in change.reason
    refused = [e for e in view.state.timeline if e.operation == "UPDATE_ORDER"]
    assert refused and refused[0].change_outcome == "REFUSED" and refused[0].change_type == "REDIRECT"
    final = await stack.orders.wait(ISSUER_ID, rid)
    assert final.state.outcome == Outcome.DELIVERED  # the order itself goes on
    emulated = (await stack.emulator("GET", "/_emulator/orders", params={"cardId": card})).json()["orders"]
    assert emulated[-1]["_emulator"]["deliveryAddress"]["city"] == "New York"


async def test_change_requests_are_validated_before_anything_is_sent(stack: Stack, codec_keys_file: Path) -> None:
    rid = new_request_id("bad-change")
    card = f"pc-{rid}"
    await paced(stack, card, 500)
    await stack.orders.submit(sample_order(rid, card_id=card))
    await stack.orders.wait_for(ISSUER_ID, rid, acknowledged, timeout=30, poll=0.05)
    before = await p_and_c_requests(stack)
    with pytest.raises(InvalidOrder) as bad:
        await stack.orders.redirect(ISSUER_ID, rid, {**NEW_ADDRESS, "countryCode": "JP", "zipCode": "#"})
    assert {e.path for e in bad.value.errors} == {"$.newDeliveryAddress.countryCode", "$.newDeliveryAddress.zipCode"}
    # Two changes at once: the second waits for D1's answer to the first.
    await approved(stack, codec_keys_file, rid, await stack.orders.redirect(ISSUER_ID, rid, NEW_ADDRESS))
    view = await stack.orders.status(ISSUER_ID, rid)
    if view.state.pending_change is not None:
        with pytest.raises(ChangeRejected, match="still waiting"):
            await stack.orders.cancel(ISSUER_ID, rid)
    await stack.orders.wait_for(ISSUER_ID, rid, decided, timeout=30, poll=0.05)
    record = await stack.orders.cancel(ISSUER_ID, rid)
    assert record.change_id == "cancel-2"
    final = await stack.orders.wait(ISSUER_ID, rid)
    assert final.state.outcome == Outcome.CANCELED
    assert await p_and_c_requests(stack) == before + 2
