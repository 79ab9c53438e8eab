"""Exceptions on demand (emulator scenarios, by cardId prefix) on the real stack: each one
ends or pauses the order as documented, with its reason, and terminal ones are findable by
the OrderOutcome search attribute."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from contracts.card_order import OrderView, Outcome
from tests.conftest import ISSUER_ID, Stack, fast_timing, new_request_id
from tests.support.orders import sample_order


async def _found_by_outcome(stack: Stack, rid: str, outcome: str) -> bool:
    query = f'IssuerRequestId = "{rid}" AND OrderOutcome = "{outcome}"'
    for _ in range(50):
        if await stack.orders.list(query):
            return True
        await asyncio.sleep(0.1)
    return False


async def _run(stack: Stack, prefix: str) -> tuple[str, OrderView]:
    rid = new_request_id("exc")
    await stack.orders.submit(sample_order(rid, card_id=f"{prefix}-{rid}"))
    return rid, await stack.orders.wait(ISSUER_ID, rid)


async def test_data_exception_ends_the_order_with_its_reason(stack: Stack) -> None:
    rid, view = await _run(stack, "emu-data-exception")
    st = view.state
    assert st.outcome == Outcome.DATA_EXCEPTION
    assert st.outcome_reason == "name exceeds printable length"
    assert st.production_status == "DATA_EXCEPTION"
    assert st.errors and st.errors[0].error_code == "EMU_DATA_REJECTED"
    assert await _found_by_outcome(stack, rid, "DATA_EXCEPTION")


async def test_production_exception_ends_the_order_with_its_reason(stack: Stack) -> None:
    rid, view = await _run(stack, "emu-prod-exception")
    st = view.state
    assert st.outcome == Outcome.PRODUCTION_EXCEPTION
    assert st.outcome_reason == "chip personalization failed"
    assert [e.production_status for e in st.timeline][-1] == "CARD_PROD_EXCEPTION"
    assert "CARD_PROD_ONGOING" not in [e.production_status for e in st.timeline]
    assert await _found_by_outcome(stack, rid, "PRODUCTION_EXCEPTION")


async def test_on_hold_pauses_then_production_resumes(stack: Stack) -> None:
    rid = new_request_id("hold")
    await stack.orders.submit(sample_order(rid, card_id=f"emu-on-hold-{rid}"))
    held = await stack.orders.wait_for(
        ISSUER_ID, rid, lambda v: v.state.production_status == "CARD_PROD_ON_HOLD", timeout=30, poll=0.05
    )
    assert held.state.outcome is None
    assert held.state.timeline[-1].reason == "card stock shortage at the personalization center"
    view = await stack.orders.wait(ISSUER_ID, rid)
    statuses = [e.production_status for e in view.state.timeline]
    assert statuses[:6] == [
        "CARD_PROD_REQUESTED",
        "DATA_PREPARED",
        "CARD_PROD_READY",
        "CARD_PROD_ON_HOLD",
        "CARD_PROD_ONGOING",
        "CARD_PROD_DONE",
    ]
    assert view.state.outcome == Outcome.DELIVERED


async def test_returned_card_ends_the_order_returned(stack: Stack) -> None:
    rid, view = await _run(stack, "emu-returned")
    st = view.state
    assert st.outcome == Outcome.RETURNED
    assert st.outcome_reason == "returned to sender: addressee unknown"
    assert st.production_status == "CARD_RETURNED"
    assert await _found_by_outcome(stack, rid, "RETURNED")


async def test_card_never_delivered_ends_lost_in_transit_after_the_quiet_window(stack: Stack) -> None:
    """A carrier exception, then silence: an outcome of its own (issue 23), not SHIPPED."""
    rid = new_request_id("lost")
    saved = stack.orders.timing
    stack.orders.timing = fast_timing(quiet_after_shipped=timedelta(seconds=2))
    try:
        await stack.orders.submit(sample_order(rid, card_id=f"emu-not-delivered-{rid}"))
    finally:
        stack.orders.timing = saved
    view = await stack.orders.wait(ISSUER_ID, rid)
    st = view.state
    assert st.outcome == Outcome.LOST_IN_TRANSIT
    assert st.outcome_reason == "carrier reported Exception, then nothing: presumed lost in transit"
    assert st.shipment is not None and st.shipment.status == "Exception"
    assert st.shipment.message == "lost in transit"
    assert await _found_by_outcome(stack, rid, "LOST_IN_TRANSIT")
    found = await stack.orders.list(f'IssuerRequestId = "{rid}" AND ShipmentStatus = "Exception"')
    assert len(found) == 1


async def test_scenario_rule_by_consumer_id(stack: Stack) -> None:
    """Rules can also be added at run time, keyed by consumerId."""
    consumer = new_request_id("cust")
    resp = await stack.emulator(
        "POST",
        "/_emulator/scenarios",
        json={"rules": [{"match": {"consumerId": consumer}, "scenario": "DATA_EXCEPTION", "reason": "bad embossing"}]},
    )
    assert resp.status_code == 200
    rid = new_request_id("by-consumer")
    order = sample_order(rid, consumerId=consumer)
    await stack.orders.submit(order)
    view = await stack.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome == Outcome.DATA_EXCEPTION and view.state.outcome_reason == "bad embossing"
