"""The order lifecycle end to end on the real Temporal dev server, the real emulator over
HTTP, the real receiver, real JWE and real tokens."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest

from contracts.card_order import OrderView, Outcome
from contracts.orphan_inbox import RECENT_QUERY, OrphanInbox
from contracts.orphan_inbox import workflow_id as inbox_workflow_id
from d1.paths import notification_path
from starter.api import OrderRefused
from tests.conftest import ISSUER_ID, Stack, fast_timing, new_request_id
from tests.support.exactly_once import all_produced, assert_exactly_once, by_card
from tests.support.orders import sample_order

pytestmark = pytest.mark.asyncio


def finished(view: OrderView) -> bool:
    return view.state.outcome is not None


async def test_happy_path_reaches_delivered(stack: Stack) -> None:
    rid = new_request_id("happy")
    submitted = await stack.orders.submit(sample_order(rid))
    assert submitted.created
    view = await stack.orders.wait(ISSUER_ID, rid)
    st = view.state
    assert st.outcome == Outcome.DELIVERED
    assert st.production_status == "CARD_SHIPPED"
    assert st.shipment is not None and st.shipment.status == "Delivered" and st.shipment.trackingNumber
    assert st.due_date and st.operation_id
    statuses = [e.production_status for e in st.timeline]
    assert statuses[:6] == [
        "CARD_PROD_REQUESTED",
        "DATA_PREPARED",
        "CARD_PROD_READY",
        "CARD_PROD_ONGOING",
        "CARD_PROD_DONE",
        "CARD_SHIPPED",
    ]
    assert st.timeline[-1].shipment_status == "Delivered"
    assert view.ref.masked_pan == "4111********1111"

    # Operators find it by its search attributes.
    found = await stack.orders.list(f'IssuerRequestId = "{rid}"')
    for _ in range(50):
        if found and found[0].outcome:
            break
        await asyncio.sleep(0.1)
        found = await stack.orders.list(f'IssuerRequestId = "{rid}"')
    assert [(o.workflow_id, o.production_status, o.outcome) for o in found] == [
        (submitted.workflow_id, "CARD_SHIPPED", "DELIVERED")
    ]
    await all_produced(stack.emulator_stats, [view.ref.card_id], timeout=30)
    assert_exactly_once(await stack.emulator_stats(), by_card([rid]))


async def test_second_start_with_same_request_id_returns_the_first_order(stack: Stack) -> None:
    rid = new_request_id("idem")
    order = sample_order(rid)
    first, second = await asyncio.gather(stack.orders.submit(order), stack.orders.submit(order))
    assert first.workflow_id == second.workflow_id
    assert sorted([first.created, second.created]) == [False, True]
    await stack.orders.wait(ISSUER_ID, rid)
    again = await stack.orders.submit(order)  # after it finished
    assert again.workflow_id == first.workflow_id and not again.created
    # Three starts, one order: D1 saw a single request for the card.
    assert_exactly_once(await stack.emulator_stats(), by_card([rid]))


async def test_different_request_for_a_card_with_an_open_order_is_refused(stack: Stack) -> None:
    rid = new_request_id("open")
    card = f"card-{rid}"
    await stack.emulator("POST", "/_emulator/faults", json={"stepDelayMs": 300})
    try:
        await stack.orders.submit(sample_order(rid, card_id=card))
        with pytest.raises(OrderRefused, match="already has an open order"):
            await stack.orders.submit(sample_order(new_request_id("other"), card_id=card))
    finally:
        await stack.emulator("POST", "/_emulator/faults", json={"stepDelayMs": 20})
    await stack.orders.wait(ISSUER_ID, rid)


async def test_d1_5xx_burst_on_submit_is_retried_and_submitted_once(stack: Stack) -> None:
    rid = new_request_id("burst")
    # Two 503s before D1 reads the order, then one after it took it (the answer is lost): the
    # third retry is a repeat that D1 must answer without a second order.
    burst = [{"status": 503, "count": 2}, {"status": 503, "afterProcessing": True}]
    await stack.emulator("POST", "/_emulator/faults", json={"orderFailures": burst})
    before = (await stack.emulator_stats())["orderRequests"]
    await stack.orders.submit(sample_order(rid))
    view = await stack.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome == Outcome.DELIVERED
    stats = await stack.emulator_stats()
    assert_exactly_once(stats, by_card([rid]), forced={view.ref.card_id})
    assert stats["cards"][view.ref.card_id]["requests"][rid] == {"first": 1, "repeat": 1, "refused": 0}
    assert stats["orderRequests"] - before == 4  # two refused attempts, the lost answer, its repeat


async def test_d1_400_ends_the_order_as_rejected_with_d1_error_code(stack: Stack) -> None:
    rid = new_request_id("rejected")
    order = sample_order(rid)
    await stack.emulator(
        "POST",
        "/_emulator/faults",
        json={
            "orderFailures": [
                {"status": 400, "count": 1, "errorCode": "FIELD_INVALID_FORMAT", "error": "services.delivery"}
            ]
        },
    )
    await stack.orders.submit(order)
    view = await stack.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome == Outcome.REJECTED
    assert view.state.errors[0].http_status == 400
    assert view.state.errors[0].error_code == "FIELD_INVALID_FORMAT"
    assert view.state.timeline == []
    assert rid not in (await stack.emulator_stats())["submissions"]


async def test_silence_triggers_reconciliation_from_the_status_endpoint(stack: Stack, clean_emulator: Stack) -> None:
    from datetime import timedelta

    rid = new_request_id("silent")
    await stack.emulator("POST", "/_emulator/faults", json={"dropNotifications": True})
    orders = stack.orders
    saved = orders.timing
    orders.timing = fast_timing(reconcile_after=timedelta(seconds=1))
    try:
        await orders.submit(sample_order(rid))
    finally:
        orders.timing = saved
    view = await orders.wait(ISSUER_ID, rid)
    assert view.state.outcome == Outcome.DELIVERED
    assert view.state.reconciliations >= 1
    assert {e.source for e in view.state.timeline} == {"reconciliation"}


async def test_notification_for_unknown_card_gets_204_and_is_recorded(stack: Stack) -> None:
    before = stack.router.stats.orphaned
    body = {
        "operations": [
            {
                "operationId": "op-unknown",
                "operation": "PRODUCE",
                "status": "PENDING",
                "startTime": "2026-03-01T09:15:02.120Z",
                "cardId": "card-never-ordered",
                "details": {"status": "CARD_PROD_READY"},
            },
            {
                "operationId": "op-unknown-2",
                "operation": "PRODUCE",
                "status": "PENDING",
                "startTime": "2026-03-01T09:15:02.120Z",
                "cardId": "card-never-ordered-2",
                "issuerRequestId": "req-never-sent",
                "details": {"status": "CARD_PROD_READY"},
            },
        ]
    }
    async with httpx.AsyncClient(base_url=stack.receiver_url) as http:
        resp = await http.post(notification_path(ISSUER_ID), json=body)
    assert resp.status_code == 204
    assert stack.router.stats.orphaned == before + 2
    assert {o["cardId"] for o in stack.router.stats.orphans[-2:]} == {"card-never-ordered", "card-never-ordered-2"}
    # Operators find them in the issuer's orphan inbox (a workflow visible in the UI).
    inbox = await stack.client.get_workflow_handle(inbox_workflow_id(ISSUER_ID)).query(
        RECENT_QUERY, result_type=OrphanInbox
    )
    recorded = {(e.card_id, e.reason) for e in inbox.entries}
    assert ("card-never-ordered", "no order for this card") in recorded
    assert ("card-never-ordered-2", "order closed or unknown") in recorded


async def test_late_notification_after_the_order_closed_is_recorded(stack: Stack) -> None:
    rid = new_request_id("late")
    await stack.orders.submit(sample_order(rid))
    view = await stack.orders.wait(ISSUER_ID, rid)
    late = {
        "operationId": view.state.operation_id,
        "operation": "PRODUCE",
        "status": "SUCCESSFUL",
        "startTime": "2026-03-01T09:15:02.120Z",
        "cardId": view.ref.card_id,
        "issuerRequestId": rid,
        "details": {"status": "CARD_SHIPPED", "shipment": {"status": "Delivered", "message": "signed by neighbour"}},
    }
    async with httpx.AsyncClient(base_url=stack.receiver_url) as http:
        resp = await http.post(notification_path(ISSUER_ID), json={"operations": [late]})
    assert resp.status_code == 204
    inbox = await stack.client.get_workflow_handle(inbox_workflow_id(ISSUER_ID)).query(
        RECENT_QUERY, result_type=OrphanInbox
    )
    assert any(e.issuer_request_id == rid and e.reason == "order closed or unknown" for e in inbox.entries)


async def test_receiver_rejects_malformed_bodies_with_a_reason(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.receiver_url) as http:
        not_json = await http.post(notification_path(ISSUER_ID), content=b"{not json")
        missing = await http.post(notification_path(ISSUER_ID), json={"operations": [{"operation": "PRODUCE"}]})
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]
    assert missing.status_code == 400
    assert any(f.startswith("operations.0.cardId") for f in missing.json()["fields"])


async def test_duplicated_and_shuffled_notifications_give_the_same_final_state(
    stack: Stack, clean_emulator: Stack
) -> None:
    # Reference: an order whose notifications arrive in order.
    ref_id = new_request_id("ordered")
    await stack.orders.submit(sample_order(ref_id))
    reference = await stack.orders.wait(ISSUER_ID, ref_id)

    # Same order shape, but D1's notifications are captured and replayed twice, shuffled.
    rid = new_request_id("shuffled")
    await stack.emulator("POST", "/_emulator/faults", json={"captureNotifications": True})
    try:
        await stack.orders.submit(sample_order(rid))
        bodies: list[dict] = []
        for _ in range(200):
            captured = (await stack.emulator("GET", "/_emulator/captured")).json()
            bodies = [b for b in captured if b["operations"][0].get("issuerRequestId") == rid]
            if any(
                op["details"].get("shipment", {}).get("status") == "Delivered" for b in bodies for op in b["operations"]
            ):
                break
            await asyncio.sleep(0.05)
    finally:
        await stack.emulator("POST", "/_emulator/faults", json={"captureNotifications": False})
    assert len(bodies) == len(reference.state.timeline)
    deliveries = bodies * 2
    random.Random(7).shuffle(deliveries)
    async with httpx.AsyncClient(base_url=stack.receiver_url) as http:
        for body in deliveries:
            resp = await http.post(notification_path(ISSUER_ID), content=json.dumps(body))
            assert resp.status_code == 204
    view = await stack.orders.wait(ISSUER_ID, rid)

    def essence(v: OrderView) -> tuple:
        st = v.state
        timeline = [(e.production_status, e.shipment_status, e.operation_status, e.source) for e in st.timeline]
        return (st.outcome, st.production_status, st.shipment.status if st.shipment else None, st.due_date, timeline)

    assert essence(view) == essence(reference)
    assert view.state.duplicates_ignored >= len(bodies)


async def test_hundred_orders_at_once_cause_exactly_one_token_request(stack: Stack) -> None:
    """A fresh worker process-equivalent (own token provider, own task queue)."""
    from starter.api import CardOrders
    from worker import build_worker, d1_activities

    queue = "test-token-single-flight"
    before = (await stack.emulator_stats())["tokenRequests"]
    async with d1_activities(stack.d1_settings) as acts:
        async with build_worker(stack.client, queue, acts):
            orders = CardOrders(stack.client, task_queue=queue, timing=fast_timing(), edge=stack.orders.edge)
            ids = [new_request_id("burst100") for _ in range(100)]
            await asyncio.gather(*(orders.submit(sample_order(i)) for i in ids))
            for i in ids:
                await orders.wait_for(ISSUER_ID, i, lambda v: v.state.operation_id is not None, timeout=120)
    await all_produced(stack.emulator_stats, by_card(ids), timeout=60)
    stats = await stack.emulator_stats()
    assert stats["tokenRequests"] - before == 1
    assert_exactly_once(stats, by_card(ids), max_repeats=1, max_total_repeats=5)  # a rare retried heartbeat at most
