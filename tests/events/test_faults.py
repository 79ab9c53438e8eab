"""Webhooks through a worker SIGKILL and a Temporal crash in the middle of deliveries: nothing
is lost, each card's events arrive in order (the first copy of each id), and the feed agrees
(tests/reliability/procstack.py: the worker and the server as real processes)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from contracts.card_order import Outcome
from events.api import WebhookEndpoints
from events.feed import EventFeed
from stack.servers import free_port
from tests.conftest import ISSUER_ID
from tests.events.conftest import Consumer, serving
from tests.reliability.procstack import TASK_QUEUE, proc_stack
from tests.reliability.test_faults import final_views, start_orders

pytestmark = pytest.mark.asyncio
ORDERS = 12


async def test_worker_sigkill_and_temporal_crash_during_delivery_lose_nothing(tmp_path: Path) -> None:
    consumer = Consumer(mode="slow", slow_s=0.3)  # deliveries stay in flight while things die
    port = free_port()
    async with proc_stack(tmp_path, step_delay_ms=50) as st, serving(consumer, port):
        st.start_worker()
        assert st.client is not None
        endpoints = WebhookEndpoints(st.client, TASK_QUEUE, st.local.events_settings())
        created = await endpoints.create(ISSUER_ID, f"http://127.0.0.1:{port}/hook", ["*"])
        consumer.secrets.append(created.secret)
        ids = await start_orders(st, ORDERS, "evkill")
        await consumer.wait_for(lambda: len(consumer.deliveries) >= 10, what="first deliveries")
        st.kill_workers(signal.SIGKILL)
        st.start_worker()
        await consumer.wait_for(lambda: len(consumer.deliveries) >= 40, timeout=120, what="deliveries after the kill")
        st.stop_temporal(signal.SIGKILL)
        await asyncio.sleep(1)
        st.start_temporal()
        st.client = await st.connect()
        views = await final_views(st, ids)
        assert {v.state.outcome for v in views.values()} == {Outcome.DELIVERED}
        cards = {v.ref.card_id for v in views.values()}
        consumer.mode = "ok"
        await consumer.wait_for(
            lambda: all("order.delivered" in [e["type"] for e in consumer.of_card(c)] for c in cards),
            timeout=240,
            what="every order's events",
        )
        feed = EventFeed(st.client)
        everything = []
        cursor = None
        while True:
            page = await feed.read(ISSUER_ID, after=cursor, limit=500)
            everything += page.events
            cursor = page.next_cursor
            if not page.has_more:
                break
    for card in cards:
        expected = [e.id for e in everything if e.card_id == card]
        got = [e["id"] for e in consumer.of_card(card)]
        assert got == expected, card
        kinds = [e["type"] for e in consumer.of_card(card)]
        assert kinds[0] == "order.created" and kinds[-1] == "order.delivered" and "order.shipped" in kinds
