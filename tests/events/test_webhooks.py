"""Webhooks on the real stack: every milestone of an order, signed, exactly once after
de-duplication by event id, in order; the same events in the feed (docs/events.md)."""

from __future__ import annotations

import pytest

from contracts.card_order import Outcome
from contracts.card_tracking import TrackingResult
from events.feed import EventFeed
from tests.conftest import ISSUER_ID, Stack, new_request_id
from tests.events.conftest import Registered
from tests.support.orders import sample_order

pytestmark = pytest.mark.asyncio

# A delivered order's milestones, in order (the emulator's happy path; several carrier scans).
HAPPY_START = ["order.created", "order.submitted", "order.production_status_changed"]


def types_of(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


async def submit_and_deliver(stack: Stack) -> tuple[str, str]:
    rid = new_request_id("events")
    order = sample_order(rid)
    await stack.orders.submit(order)
    view = await stack.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome == Outcome.DELIVERED
    return rid, order["cardId"]


async def test_every_milestone_arrives_once_in_order_and_the_feed_agrees(stack: Stack, consumer: Registered) -> None:
    rid, card = await submit_and_deliver(stack)
    c = consumer.consumer
    await c.wait_for(lambda: "order.delivered" in types_of(c.of_card(card)), what="order.delivered")
    events = c.of_card(card)
    kinds = types_of(events)
    assert kinds[:3] == HAPPY_START, kinds
    assert kinds.count("order.shipped") == 1 and kinds[-1] == "order.delivered", kinds
    assert kinds.index("order.shipped") < kinds.index("order.delivered")
    # In order: the issuer's sequence grows with each delivery of the card.
    sequences = [e["sequence"] for e in events]
    assert sequences == sorted(sequences)
    # Exactly once after de-duplication: every fact one id.
    assert len({e["id"] for e in events}) == len(events)
    for e in events:
        assert e["issuer_id"] == ISSUER_ID and e["issuer_request_id"] == rid
        assert (e["masked_pan"] and "*" in e["masked_pan"]) or "X" in e["masked_pan"].upper()
    production = [e["data"]["production_status"] for e in events if e["type"] == "order.production_status_changed"]
    assert len(production) == len(set(production)) >= 3, production
    # The feed: the same events in the same order, pages of 3 with working cursors.
    feed = EventFeed(stack.client)
    from_feed: list[dict] = []
    cursor = str(events[0]["sequence"] - 1)
    while True:
        page = await feed.read(ISSUER_ID, after=cursor, limit=3)
        from_feed += [e.model_dump(mode="json", exclude_none=True) for e in page.events if e.card_id == card]
        cursor = page.next_cursor
        if not page.has_more or int(cursor) >= events[-1]["sequence"]:
            break
    assert [e["id"] for e in from_feed] == [e["id"] for e in events]
    assert from_feed == events  # the same bodies
    only = await feed.read(ISSUER_ID, after=str(events[0]["sequence"] - 1), types=["order.delivered"], limit=500)
    assert events[-1]["id"] in [e.id for e in only.events]
    assert {e.type for e in only.events} == {"order.delivered"}


async def test_a_tracked_card_announces_its_tracking(stack: Stack, consumer: Registered) -> None:
    card = f"trk-events-{new_request_id('t')[2:]}"
    details = {"shipment": {"carrier": "dhl", "trackingNumber": "JD014600006"}}
    submitted = await stack.orders.track(ISSUER_ID, card, "SHIPMENT", details=details)
    ended = stack.orders.client.get_workflow_handle(submitted.workflow_id, result_type=TrackingResult)
    assert (await ended.result()).outcome == Outcome.DELIVERED
    c = consumer.consumer
    await c.wait_for(lambda: "tracking.delivered" in types_of(c.of_card(card)), what="tracking.delivered")
    events = c.of_card(card)
    assert types_of(events)[0] == "tracking.started" and types_of(events)[-1] == "tracking.delivered"
    assert all(e["data"]["tracking_type"] == "SHIPMENT" for e in events)
    assert all("issuer_request_id" not in e for e in events)
