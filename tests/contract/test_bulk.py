"""BULK shipment on the real stack: cards sharing a container ship together, in one bulk
notification per carrier step, and the product lists the orders of a group."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from contracts.card_order import Outcome
from tests.conftest import ISSUER_ID, Stack, new_request_id
from tests.support.orders import sample_order

BRANCH = {
    "companyName": "Demo Bank Branch 017",
    "line1": "1 Plaza Ave",
    "city": "Chicago",
    "state": "IL",
    "zipCode": "60601",
    "countryCode": "US",
}


def bulk_order(rid: str, group: str, dispatch: str) -> dict[str, Any]:
    return sample_order(
        rid, shipment={"type": "BULK", "groupId": group, "orderId": dispatch, "deliveryAddress": BRANCH}
    )


async def test_bulk_group_ships_in_one_notification_per_step(stack: Stack) -> None:
    group = f"box-{uuid.uuid4().hex[:10]}"
    dispatch = f"dispatch-{group}"
    rids = [new_request_id("bulk") for _ in range(4)]
    await stack.emulator("POST", "/_emulator/groups", json={"windowMs": 1500})
    try:
        before = await stack.emulator_stats()
        submitted = await asyncio.gather(*(stack.orders.submit(bulk_order(rid, group, dispatch)) for rid in rids))
        assert all(s.created for s in submitted)
        views = await asyncio.gather(*(stack.orders.wait(ISSUER_ID, rid) for rid in rids))
    finally:
        await stack.emulator("POST", "/_emulator/groups", json={"windowMs": 1000})

    for view in views:
        assert view.state.outcome == Outcome.DELIVERED
        assert view.state.production_status == "CARD_SHIPPED"
        assert view.ref.group_id == group and view.ref.shipment_type == "BULK"
    assert len({v.state.shipment.trackingNumber for v in views if v.state.shipment}) == 1  # one parcel

    groups = (await stack.emulator("GET", "/_emulator/groups")).json()["groups"]
    mine = [g for g in groups if g["orderId"] == dispatch]
    assert len(mine) == 1, mine
    container = mine[0]
    assert sorted(container["issuerRequestIds"]) == sorted(rids)
    # One body per carrier step, each carrying the four cards' operations (the first: CARD_SHIPPED).
    assert container["bodies"] == [4, 4, 4, 4]
    after = await stack.emulator_stats()
    assert after["bulkNotifications"] - before["bulkNotifications"] == 4
    assert after["bulkOperations"] - before["bulkOperations"] == 16

    listed: list[Any] = []
    for _ in range(50):
        listed = await stack.orders.group_orders(group, issuer_id=ISSUER_ID)
        if len(listed) == 4 and all(o.outcome == "DELIVERED" for o in listed):
            break
        await asyncio.sleep(0.1)
    assert sorted(o.issuer_request_id or "" for o in listed) == sorted(rids)
