"""The tracking hub on the real server: each tracking type reaches its final state from
STANDALONE_TRACKING notifications delivered twice and shuffled, through the receiver."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from typing import Any

import httpx
import pytest
from temporalio.service import RPCError, RPCStatusCode

from contracts import card_tracking
from contracts import search_attributes as sa
from contracts.card_order import Outcome
from contracts.card_tracking import TrackingResult
from d1.paths import notification_path
from d1.validation import InvalidOrder
from tests.conftest import ISSUER_ID, Stack, new_request_id
from tests.support.orders import sample_order

CASES = [
    ("PRODUCTION", {"productionSite": "BUREAU-7"}, Outcome.SHIPPED, 1),
    ("SHIPMENT", {"shipment": {"carrier": "dhl", "trackingNumber": "JD014600006"}}, Outcome.DELIVERED, 5),
    (
        "RETURN",
        {"shipment": {"carrier": "ups", "trackingNumber": "1Z999AA10123"}, "reason": "address unknown"},
        Outcome.RETURNED,
        1,
    ),
]


async def _captured_for(stack: Stack, card: str, count: int) -> list[dict[str, Any]]:
    for _ in range(300):
        captured = (await stack.emulator("GET", "/_emulator/captured")).json()
        bodies = [b for b in captured if any(op.get("cardId") == card for op in b["operations"])]
        if len(bodies) >= count:
            return bodies
        await asyncio.sleep(0.05)
    raise AssertionError(f"the emulator sent {len(bodies)} notification(s) for {card}, expected {count}")


@pytest.mark.parametrize(("kind", "details", "outcome", "notifications"), CASES, ids=[c[0] for c in CASES])
async def test_each_tracking_type_reaches_its_end_from_duplicated_shuffled_notifications(
    stack: Stack, clean_emulator: Stack, kind: str, details: dict[str, Any], outcome: Outcome, notifications: int
) -> None:
    card = f"trk-{kind.lower()}-{uuid.uuid4().hex[:10]}"
    await stack.emulator("POST", "/_emulator/faults", json={"captureNotifications": True})
    try:
        submitted = await stack.orders.track(ISSUER_ID, card, kind, details=details)
        assert submitted.created
        again = await stack.orders.track(ISSUER_ID, card, kind, details=details)
        assert again == submitted.__class__(submitted.workflow_id, created=False)  # same tracking
        bodies = await _captured_for(stack, card, notifications)
    finally:
        await stack.emulator("POST", "/_emulator/faults", json={"captureNotifications": False})
    assert all(op["operation"] == "STANDALONE_TRACKING" for b in bodies for op in b["operations"])
    deliveries = bodies * 2
    random.Random(11).shuffle(deliveries)
    async with httpx.AsyncClient(base_url=stack.receiver_url) as http:
        for body in deliveries:
            assert (await http.post(notification_path(ISSUER_ID), content=json.dumps(body))).status_code == 204
    handle = stack.orders.tracking_handle(ISSUER_ID, card, kind)
    ended = stack.orders.client.get_workflow_handle(handle.id, result_type=TrackingResult)
    result: TrackingResult = await asyncio.wait_for(ended.result(), timeout=60)
    assert result.outcome is outcome and result.workflow_id == handle.id
    # The result says how it ended; the view, by query after the end, what happened.
    view = await stack.orders.tracking_status(ISSUER_ID, card, kind)
    assert view.state.outcome is outcome
    assert view.state.duplicates_ignored >= len(bodies)
    attrs = (await handle.describe()).typed_search_attributes
    assert attrs.get(sa.CARD_ID) == card and attrs.get(sa.ORDER_OUTCOME) == outcome.value
    stats = await stack.emulator_stats()
    assert stats["trackRequests"] >= 1
    assert view.workflow_id == card_tracking.workflow_id(ISSUER_ID, card, kind)


async def test_a_tracking_request_is_validated_before_anything_starts(stack: Stack) -> None:
    card = f"trk-invalid-{uuid.uuid4().hex[:10]}"
    track_requests = (await stack.emulator_stats())["trackRequests"]
    with pytest.raises(InvalidOrder) as info:
        await stack.orders.track(ISSUER_ID, card, "SHIPMENT", details={"shipment": {"carrier": "pigeon"}})
    paths = {e.path for e in info.value.errors}
    assert "$.shipment.trackingNumber" in paths and "$.shipment.carrier" in paths
    with pytest.raises(InvalidOrder):
        await stack.orders.track(
            ISSUER_ID, card, "SHIPMENT", details={"shipment": {"carrier": "dhl", "trackingNumber": "4929731640582292"}}
        )
    # Nothing started: no tracking workflow under that id, no request to D1's tracking hub.
    with pytest.raises(RPCError) as missing:
        await stack.orders.tracking_handle(ISSUER_ID, card, "SHIPMENT").describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    assert (await stack.emulator_stats())["trackRequests"] == track_requests


async def test_a_running_tracking_does_not_block_a_card_order_for_the_same_card(stack: Stack) -> None:
    card = f"trk-and-order-{uuid.uuid4().hex[:10]}"
    await stack.emulator("POST", "/_emulator/faults", json={"captureNotifications": True})
    try:
        assert (await stack.orders.track(ISSUER_ID, card, "RETURN", details={"reason": "moved"})).created
        submitted = await stack.orders.submit(sample_order(new_request_id("after-trk"), card_id=card))
    finally:
        await stack.emulator("POST", "/_emulator/faults", json={"captureNotifications": False})
    assert submitted.created
    await stack.orders.tracking_handle(ISSUER_ID, card, "RETURN").terminate("test done")
