"""Delivery through trouble on the real stack: a consumer that is down (refusing connections,
then answering 500, then timing out) gets everything in order once back; a slow consumer
does not slow the orders; redelivery sends one event again (docs/events.md)."""

from __future__ import annotations

import asyncio
import time

import pytest

from contracts.card_order import Outcome
from events.contract import EndpointStatus
from events.feed import EventFeed
from tests.conftest import ISSUER_ID, Stack, new_request_id
from tests.events.conftest import Consumer, endpoints_of, registered, serving
from tests.support.orders import sample_order

pytestmark = pytest.mark.asyncio


async def endpoint_status(stack: Stack, endpoint_id: str) -> EndpointStatus:
    return (await endpoints_of(stack).get(ISSUER_ID, endpoint_id)).status


async def wait_status(stack: Stack, endpoint_id: str, status: EndpointStatus, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while await endpoint_status(stack, endpoint_id) != status:
        assert time.monotonic() < deadline, f"endpoint never {status}"
        await asyncio.sleep(0.2)


async def test_a_consumer_down_then_back_receives_everything_in_order(stack: Stack) -> None:
    consumer = Consumer()
    async with registered(stack, consumer, serve_now=False) as reg:
        rids = [new_request_id("down") for _ in range(3)]
        orders = [sample_order(rid) for rid in rids]
        for order in orders:
            await stack.orders.submit(order)
        # 1. Refusing connections: nothing listens on the port. The orders do not wait for it.
        for rid in rids:
            assert (await stack.orders.wait(ISSUER_ID, rid)).state.outcome == Outcome.DELIVERED
        await wait_status(stack, reg.endpoint_id, EndpointStatus.FAILING)
        # 2. Answering 500, then 3. not answering in time.
        consumer.mode = "500"
        async with serving(consumer, reg.port):
            await consumer.wait_for(lambda: consumer.refused >= 2, what="500 answers")
            consumer.mode = "hang"
            seen = consumer.requests
            await consumer.wait_for(lambda: consumer.requests > seen + 1, timeout=60, what="attempts while hanging")
            assert consumer.deliveries == []
            # 4. Back.
            consumer.mode = "ok"
            cards = [o["cardId"] for o in orders]
            await consumer.wait_for(
                lambda: all("order.delivered" in [e["type"] for e in consumer.of_card(c)] for c in cards),
                timeout=120,
                what="the backlog",
            )
            await wait_status(stack, reg.endpoint_id, EndpointStatus.ENABLED)
    feed = EventFeed(stack.client)
    for card in cards:
        got = consumer.of_card(card)
        assert [e["sequence"] for e in got] == sorted(e["sequence"] for e in got)
        first = got[0]["sequence"] - 1
        page = await feed.read(ISSUER_ID, after=str(first), limit=500)
        expected = [e.id for e in page.events if e.card_id == card]
        assert [e["id"] for e in got] == expected


async def test_a_slow_consumer_does_not_slow_the_orders(stack: Stack) -> None:
    async def run_orders(n: int) -> float:
        rids = [new_request_id("slow") for _ in range(n)]
        start = time.monotonic()
        await asyncio.gather(*(stack.orders.submit(sample_order(rid)) for rid in rids))
        views = await asyncio.gather(*(stack.orders.wait(ISSUER_ID, rid) for rid in rids))
        assert all(v.state.outcome == Outcome.DELIVERED for v in views)
        return time.monotonic() - start

    baseline = await run_orders(4)
    consumer = Consumer(mode="slow", slow_s=5.0)
    async with registered(stack, consumer):
        with_slow = await run_orders(4)
        # The orders ended while most of their events still wait for the slow consumer.
        assert len(consumer.deliveries) < 4 * 10
    assert with_slow < baseline * 2 + 3, (baseline, with_slow)


async def test_redeliver_sends_one_event_again(stack: Stack) -> None:
    consumer = Consumer()
    async with registered(stack, consumer) as reg:
        rid = new_request_id("again")
        order = sample_order(rid)
        await stack.orders.submit(order)
        await stack.orders.wait(ISSUER_ID, rid)
        await consumer.wait_for(lambda: "order.delivered" in [e["type"] for e in consumer.of_card(order["cardId"])])
        shipped = next(e for e in consumer.of_card(order["cardId"]) if e["type"] == "order.shipped")
        before = len(consumer.deliveries)
        result = await EventFeed(stack.client).redeliver(ISSUER_ID, shipped["id"], reg.endpoint_id)
        assert result.delivered_to == [reg.endpoint_id] and result.failed == {}
        assert len(consumer.deliveries) == before + 1
        again = consumer.deliveries[-1]
        assert again.event == shipped and again.headers["webhook-id"] == shipped["id"]
