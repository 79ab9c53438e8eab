"""The issuer's event log beyond the hub's tail: sealed pages, the feed across them with
working cursors, and a backlog older than the tail delivered in order (docs/events.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from events import contract as c
from events.catalogue import Event
from events.feed import EventFeed
from stack.servers import free_port
from tests.conftest import TASK_QUEUE, Stack
from tests.events.conftest import Consumer, endpoints_of, serving

pytestmark = pytest.mark.asyncio
COUNT = 2 * c.PAGE_SIZE + 123


def synthetic(issuer_id: str, n: int) -> Event:
    now = datetime.now(UTC).isoformat()
    return Event(
        id=f"evt_test_{issuer_id}_{n}",
        type="order.shipment_updated" if n % 2 else "order.production_status_changed",
        occurred_at=now,
        emitted_at=now,
        issuer_id=issuer_id,
        card_id=f"card-{n % 7}",
        workflow_id=f"card-order:{issuer_id}:req-{n % 7}",
        data={"n": n},
    )


async def test_pages_the_feed_and_an_old_backlog(stack: Stack) -> None:
    issuer = f"EVT{uuid.uuid4().hex[:8].upper()}"
    consumer = Consumer()
    port = free_port()
    endpoints = endpoints_of(stack)
    created = await endpoints.create(issuer, f"http://127.0.0.1:{port}/hook", ["order.shipment_updated"])
    consumer.secrets.append(created.secret)
    endpoint_id = created.endpoint.endpoint_id
    await endpoints.disable(issuer, endpoint_id)  # the backlog builds up while it is disabled
    events = [synthetic(issuer, n) for n in range(COUNT)]
    for start in range(0, COUNT, 400):  # as the worker's emit activity sends them
        await stack.client.start_workflow(
            c.HUB_WORKFLOW_TYPE,
            c.HubInput(issuer_id=issuer),
            id=c.hub_id(issuer),
            task_queue=TASK_QUEUE,
            start_signal=c.EVENTS_SIGNAL,
            start_signal_args=[c.EventBatch(events=events[start : start + 400])],
        )
    # A batch sent twice (an emit retried after its signal landed) is dropped.
    await stack.client.get_workflow_handle(c.hub_id(issuer)).signal(c.EVENTS_SIGNAL, c.EventBatch(events=events[-5:]))

    feed = EventFeed(stack.client)
    seen: list[Event] = []
    cursor: str | None = None
    while True:
        page = await feed.read(issuer, after=cursor, limit=170)
        seen += page.events
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert [e.id for e in seen] == [e.id for e in events]
    assert [e.sequence for e in seen] == list(range(1, COUNT + 1))
    tail = await stack.client.get_workflow_handle(c.hub_id(issuer)).query(
        c.TAIL_QUERY, c.TailRequest(), result_type=c.HubTail
    )
    assert tail.sealed_upto == 2 * c.PAGE_SIZE and tail.last_sequence == COUNT  # two pages sealed
    filtered = await feed.read(issuer, types=["order.shipment_updated"], limit=500)
    assert {e.type for e in filtered.events} == {"order.shipment_updated"} and len(filtered.events) == 500

    async with serving(consumer, port):
        await endpoints.enable(issuer, endpoint_id)
        wanted = [e.id for e in events if e.type == "order.shipment_updated"]
        # Created at sequence 0: the whole backlog, pages included.
        await consumer.wait_for(lambda: len({d.event["id"] for d in consumer.deliveries}) >= len(wanted), timeout=120)
    got = list(dict.fromkeys(d.event["id"] for d in consumer.deliveries))
    assert sorted(got) == sorted(wanted)  # cards go in parallel: in order per card, below
    for card in {e.card_id for e in events}:
        sequences = [d.event["sequence"] for d in consumer.deliveries if d.event["card_id"] == card]
        assert sequences == sorted(sequences)
    await endpoints.disable(issuer, endpoint_id)
