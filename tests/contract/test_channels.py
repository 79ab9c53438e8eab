"""Distribution channels on the real stack: INSTANT ends when the card is produced at the
station (no shipment), CENTRAL ships like THALES when it has a shipment."""

from __future__ import annotations

import pytest

from contracts.card_order import Outcome
from starter.api import ChangeRejected
from tests.conftest import ISSUER_ID, Stack, new_request_id
from tests.support.orders import sample_order


async def test_instant_order_ends_produced_and_takes_no_shipping_change(stack: Stack) -> None:
    rid = new_request_id("instant")
    card = f"inst-{rid}"
    await stack.emulator(
        "POST", "/_emulator/scenarios", json={"rules": [{"match": {"cardIdPrefix": card}, "stepDelayMs": 300}]}
    )
    order = sample_order(
        rid,
        card_id=card,
        distributionChannel="INSTANT",
        persoStation="BRANCH-017-ST1",
        services={"issuance": "CREATION"},
    )
    del order["shipment"]
    await stack.orders.submit(order)
    await stack.orders.wait_for(ISSUER_ID, rid, lambda v: v.state.production_status is not None, poll=0.05)
    with pytest.raises(ChangeRejected, match="only applies to shipped cards"):
        await stack.orders.accelerate(ISSUER_ID, rid)
    view = await stack.orders.wait(ISSUER_ID, rid)
    assert view.ref.distribution_channel == "INSTANT" and view.ref.shipment_type is None
    assert view.state.outcome == Outcome.PRODUCED
    assert [e.production_status for e in view.state.timeline] == [
        "CARD_PROD_REQUESTED",
        "CARD_PROD_READY",
        "CARD_PROD_DONE",
    ]


async def test_central_order_with_shipment_is_delivered(stack: Stack) -> None:
    rid = new_request_id("central")
    await stack.orders.submit(sample_order(rid, distributionChannel="CENTRAL"))
    view = await stack.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome == Outcome.DELIVERED and view.ref.distribution_channel == "CENTRAL"
