"""D1's Card Activation as an event (issues 22 and 23), on the real stack: the bank's consumer,
verifying each webhook with the `standardwebhooks` library, hears of an activation once,
in order with the card's other events, whether the order was still open or long closed; the
feed (events/feed.py) has the same event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from contracts import activation as activation_api
from contracts.activation import ActivationRecord
from contracts.card_order import Outcome
from events import contract as events_api
from events.api import WebhookEndpoints
from events.feed import EventFeed
from events.from_order import event_id
from stack.servers import free_port
from tests.conftest import ISSUER_ID, new_request_id
from tests.events.conftest import Consumer, Registered, serving
from tests.lifecycle.conftest import TASK_QUEUE, Life
from tests.lifecycle.test_activation import emulator_call
from tests.support.orders import sample_order

pytestmark = pytest.mark.asyncio

ACTIVATED = "order.card_activated"
EARLY = "order.card_activated_before_delivery"


@pytest_asyncio.fixture
async def hook(life: Life) -> AsyncIterator[Registered]:
    """An endpoint of the test issuer for every event type, pointing at a verifying consumer."""
    endpoints = WebhookEndpoints(life.client, TASK_QUEUE, life.local.events_settings())
    consumer, port = Consumer(), free_port()
    url = f"http://127.0.0.1:{port}/hook"
    created = await endpoints.create(ISSUER_ID, url, ["*"], description="tests/lifecycle activation events")
    consumer.secrets.append(created.secret)
    try:
        async with serving(consumer, port):
            yield Registered(consumer, url, port, created)
    finally:
        await endpoints.disable(ISSUER_ID, created.endpoint.endpoint_id)


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def copies(consumer: Consumer, card_id: str, kind: str) -> list[dict[str, Any]]:
    """Every delivery of ``kind`` for the card, duplicates included."""
    return [d.event for d in consumer.deliveries if d.event["card_id"] == card_id and d.event["type"] == kind]


async def record_of(life: Life, card_id: str) -> ActivationRecord:
    handle = life.client.get_workflow_handle(
        activation_api.workflow_id(ISSUER_ID, card_id), result_type=ActivationRecord
    )
    return await handle.result()


async def in_feed(life: Life, event: dict[str, Any]) -> list[dict[str, Any]]:
    """The feed's events of the type and card of ``event``, from just before it."""
    page = await EventFeed(life.client).read(
        ISSUER_ID, after=str(event["sequence"] - 1), types=[event["type"]], limit=500
    )
    return [e.model_dump(mode="json", exclude_none=True) for e in page.events if e.card_id == event["card_id"]]


async def test_an_activation_after_the_order_closed_reaches_the_bank_once(life: Life, hook: Registered) -> None:
    rid = new_request_id("actev")
    card = f"card-{rid}"
    await life.orders.submit(sample_order(rid, card_id=card))
    view = await life.orders.wait(ISSUER_ID, rid)  # the order's workflow has closed
    assert view.state.outcome == Outcome.DELIVERED
    c = hook.consumer
    await c.wait_for(lambda: "order.delivered" in types_of(c.of_card(card)), what="order.delivered")

    # Days later, the cardholder activates: D1 calls the receiver, the bank's CMS confirms.
    assert (await life.activate(card))["attempts"] == [204]
    await c.wait_for(lambda: ACTIVATED in types_of(c.of_card(card)), what=ACTIVATED)
    events = c.of_card(card)
    activated = events[-1]
    assert activated["type"] == ACTIVATED, types_of(events)  # after every event of the order
    assert [e["sequence"] for e in events] == sorted(e["sequence"] for e in events)
    # The order's envelope and data, as if the order had still been open; the same stable id.
    assert activated["workflow_id"] == view.workflow_id and activated["issuer_request_id"] == rid
    assert view.ref.masked_pan and activated["masked_pan"] == view.ref.masked_pan  # read by the worker
    assert activated["id"] == event_id(view.workflow_id, ACTIVATED, "activation:ACTIVATED")
    assert activated["data"]["activation"] == "ACTIVATED" and "DELIVERED" in activated["data"]["order_stage"]
    record = await record_of(life, card)
    assert activated["occurred_at"] == record.activated_at and not record.order_announces
    assert record.cms_reference and record.cms_reference not in str(activated)
    # The closed order announced nothing of it: the activation record did.
    sent = await life.orders.handle(ISSUER_ID, rid).query(
        events_api.EVENTS_SENT_QUERY, result_type=list[events_api.SentEvent]
    )
    assert ACTIVATED not in [e.type for e in sent]
    assert await in_feed(life, activated) == [activated]  # the same body in the feed

    # D1 repeats its call: 204, no new record, no second event.
    assert (await life.activate(card))["attempts"] == [204]
    record_id = activation_api.workflow_id(ISSUER_ID, card)
    assert len([wf async for wf in life.client.list_workflows(f'WorkflowId = "{record_id}"')]) == 1
    await asyncio.sleep(2)  # what a second event would need to reach the consumer
    assert copies(c, card, ACTIVATED) == [activated]
    assert await in_feed(life, activated) == [activated]


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [
        # In transit: the running order takes it and announces it; the record announces nothing.
        ("emu-early-activation", EARLY),
        # Right after delivery: the order may still be closing (its outcome set); whichever of
        # the order and the record raised it, one event, after order.delivered.
        ("emu-activated", ACTIVATED),
    ],
)
async def test_an_activation_around_the_order_is_announced_once_in_order(
    life: Life, hook: Registered, prefix: str, kind: str
) -> None:
    rid = new_request_id("actev")
    card = f"{prefix}-{rid}"
    await life.orders.submit(sample_order(rid, card_id=card))
    view = await life.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome == Outcome.DELIVERED
    await emulator_call(life, card)  # D1 heard 204: the activation is recorded
    record = await record_of(life, card)
    c = hook.consumer
    await c.wait_for(
        lambda: {kind, "order.delivered"} <= set(types_of(c.of_card(card))), what=f"{kind} and order.delivered"
    )
    await asyncio.sleep(2)  # a second copy, were there one
    events = c.of_card(card)
    kinds = types_of(events)
    assert kinds.count(kind) == 1 and len(copies(c, card, kind)) == 1, kinds
    assert [e["sequence"] for e in events] == sorted(e["sequence"] for e in events)
    [announced] = [e for e in events if e["type"] == kind]
    assert announced["id"] == event_id(view.workflow_id, kind, f"activation:{record.flag.value}")
    assert announced["issuer_request_id"] == rid and announced["occurred_at"] == record.activated_at
    if kind == EARLY:
        assert record.order_announces
        assert kinds.index("order.shipped") < kinds.index(EARLY) < kinds.index("order.delivered"), kinds
    else:
        assert kinds.index("order.delivered") < kinds.index(ACTIVATED), kinds
    assert await in_feed(life, announced) == [announced]
