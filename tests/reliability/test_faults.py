"""No order is lost, duplicated or stuck, whatever fails. Each test breaks something on
purpose on the real Temporal server, the real receiver and the emulator."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState

from activities import contract as acts
from contracts.card_order import OrderView, Outcome, workflow_id
from tests.conftest import ISSUER_ID, new_request_id
from tests.reliability.procstack import ProcStack, proc_stack
from tests.support.exactly_once import assert_exactly_once, by_card, until
from tests.support.orders import sample_order

SUBMIT_ACTIVITIES = {acts.SUBMIT_ORDER}

pytestmark = pytest.mark.asyncio


async def start_orders(st: ProcStack, n: int, prefix: str) -> list[str]:
    assert st.orders is not None
    ids = [new_request_id(prefix) for _ in range(n)]
    sem = asyncio.Semaphore(50)

    async def one(rid: str) -> None:
        async with sem:
            await st.orders.submit(sample_order(rid))  # type: ignore[union-attr]

    await asyncio.gather(*(one(i) for i in ids))
    return ids


async def final_views(st: ProcStack, ids: list[str], timeout: float = 240) -> dict[str, OrderView]:
    """Wait for every order's result, surviving server restarts (retrying the long poll)."""
    assert st.orders is not None
    out: dict[str, OrderView] = {}

    async def one(rid: str) -> None:
        while True:
            try:
                out[rid] = await st.orders.wait(ISSUER_ID, rid)  # type: ignore[union-attr]
                return
            except Exception:
                await asyncio.sleep(0.5)

    try:
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in ids)), timeout=timeout)
    except TimeoutError:
        missing = [i for i in ids if i not in out]
        raise AssertionError(
            f"{len(missing)} of {len(ids)} orders did not end within {timeout:g} s: {missing[:5]}"
        ) from None
    return out


async def holds(st: ProcStack) -> list[dict[str, Any]]:
    """The D1 requests the emulator holds open (received, not answered)."""
    held: list[dict[str, Any]] = (await st.emulator("GET", "/_emulator/holds")).json()["holds"]
    return held


async def until_held(st: ProcStack, n: int, kind: str = "order") -> list[dict[str, Any]]:
    """Wait until D1 holds ``n`` requests whose callers are still connected: calls in flight."""

    async def held() -> list[dict[str, Any]]:
        current = [h for h in await holds(st) if h["kind"] == kind]
        return current if len(current) >= n and not any(h["clientGone"] for h in current) else []

    return await until(held, timeout=90, what=f"D1 never held {n} {kind} request(s) of connected callers")


async def until_callers_gone(st: ProcStack, n: int) -> None:
    """After a kill: the held calls' connections closed (the kill cut calls in flight)."""

    async def gone() -> bool:
        current = await holds(st)
        return len(current) == n and all(h["clientGone"] for h in current)

    await until(gone, timeout=30, what="the held D1 calls were not cut by the kill")


@asynccontextmanager
async def releasing_holds(st: ProcStack) -> AsyncIterator[None]:
    """Held requests are released whatever happens (else the emulator's shutdown waits on them)."""
    try:
        yield
    finally:
        await st.emulator("POST", "/_emulator/holds/release")


async def submit_activities(st: ProcStack, rid: str) -> list[Any]:
    """The order's pending submit activity (Temporal's view), if any."""
    assert st.client is not None
    description = await st.client.get_workflow_handle(workflow_id(ISSUER_ID, rid)).describe()
    return [a for a in description.raw_description.pending_activities if a.activity_type.name in SUBMIT_ACTIVITIES]


async def submit_attempt(st: ProcStack, rid: str) -> int:
    """The attempt of the order's submit activity that completed (from its history)."""
    assert st.client is not None
    scheduled: set[int] = set()
    async for event in st.client.get_workflow_handle(workflow_id(ISSUER_ID, rid)).fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            if event.activity_task_scheduled_event_attributes.activity_type.name in SUBMIT_ACTIVITIES:
                scheduled.add(event.event_id)
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id in scheduled:
                return int(started.attempt)
    raise AssertionError(f"{rid}: no submit activity started")


async def assert_calls_in_flight(st: ProcStack, held: list[dict[str, Any]], rid_of: dict[str, str]) -> None:
    """Temporal's view of the held calls: each one's submit activity started, not completed."""
    for hold in held:
        [pending] = await submit_activities(st, rid_of[hold["cardId"]])
        assert pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED, pending


HELD = 5


async def test_sigkill_worker_with_200_orders_in_flight(tmp_path: Path) -> None:
    async with proc_stack(tmp_path, step_delay_ms=100, d1_read_timeout_s=120) as st, releasing_holds(st):
        # D1 takes the first orders and holds its answers: the worker dies in those calls.
        hold = {"hold": True, "afterProcessing": True, "count": HELD}
        await st.emulator("POST", "/_emulator/faults", json={"orderFailures": [hold]})
        st.start_worker()
        ids = await start_orders(st, 200, "kill")
        cards = by_card(ids)
        held = await until_held(st, HELD)
        await assert_calls_in_flight(st, held, cards)
        st.kill_workers(signal.SIGKILL)
        await until_callers_gone(st, HELD)
        at_kill = await st.emulator_stats()  # what D1 had received from the dead worker
        await st.emulator("POST", "/_emulator/holds/release")
        st.start_worker()
        views = await final_views(st, ids)
        assert {v.state.outcome for v in views.values()} == {Outcome.DELIVERED}
        stats = await st.emulator_stats()
        held_cards = {h["cardId"] for h in held}
        # Only calls cut by the kill are repeated: an order D1 first saw after it has none.
        late = len(cards) - len(at_kill["cards"])
        assert_exactly_once(stats, cards, forced=held_cards, max_repeats=1, max_total_repeats=len(at_kill["cards"]))
        late_repeats = sum(stats["cards"][c]["repeats"] for c in cards if c not in at_kill["cards"])
        assert late_repeats <= late // 10, f"{late_repeats} repeats among the {late} orders D1 first saw after the kill"
        # Temporal's side of the recovery: the interrupted attempts were retried.
        attempts = {c: await submit_attempt(st, cards[c]) for c in held_cards}
        assert min(attempts.values()) >= 2, attempts


async def test_temporal_server_stopped_then_crashed_in_the_middle_of_100_orders(tmp_path: Path) -> None:
    async with (
        proc_stack(tmp_path, step_delay_ms=100, reconcile_after=timedelta(seconds=5), d1_read_timeout_s=120) as st,
        releasing_holds(st),
    ):
        st.start_worker()
        ids: list[str] = []
        # First a graceful stop (SIGTERM), then a crash (SIGKILL), each while D1 holds calls of
        # the worker's: activities started and not completed when the server goes.
        for turn, sig in enumerate((signal.SIGTERM, signal.SIGKILL)):
            hold = {"hold": True, "afterProcessing": True, "count": HELD}
            await st.emulator("POST", "/_emulator/faults", json={"orderFailures": [hold]})
            batch = await start_orders(st, 50, f"restart{turn}")
            ids += batch
            held = await until_held(st, HELD)
            await assert_calls_in_flight(st, held, by_card(ids))  # round 1 orders may be held too
            st.stop_temporal(sig)
            # The held calls are answered while the server is down; the worker must get their
            # results to the server once it is back (or retry them: D1 then sees repeats).
            await st.emulator("POST", "/_emulator/holds/release")
            st.start_temporal()
            await st.connect()  # up again (the stack's client reconnects by itself)
        views = await final_views(st, ids)
        assert {v.state.outcome for v in views.values()} == {Outcome.DELIVERED}
        stats = await st.emulator_stats()
        assert_exactly_once(stats, by_card(ids), max_repeats=1, max_total_repeats=2 * HELD + len(ids) // 10)
        # No order exists twice in Temporal either.
        assert st.client is not None
        seen = [wf.id async for wf in st.client.list_workflows('WorkflowType = "CardOrderWorkflow"')]
        assert len(seen) == len(set(seen)) == 100


async def test_thirty_percent_of_d1_calls_failing(tmp_path: Path) -> None:
    async with proc_stack(tmp_path, step_delay_ms=20, reconcile_after=timedelta(seconds=3)) as st:
        share = {"ratio": 0.3, "delayMs": 3000, "retryAfterS": 1, "seed": 42}
        await st.emulator("POST", "/_emulator/faults", json={"orderFailureShare": share, "statusFailureShare": share})
        st.start_worker()
        ids = await start_orders(st, 200, "flaky")
        views = await final_views(st, ids, timeout=400)
        assert {v.state.outcome for v in views.values()} == {Outcome.DELIVERED}
        stats = await st.emulator_stats()
        assert stats["orderRequests"] > 200 * 1.2  # the faults really happened and were retried
        # A delayed or cut call was processed and retried: D1 saw repeats, still one order each.
        # (0.3 x 2/4 of calls end that way: ~35 repeats expected, a handful at most per card.)
        assert_exactly_once(stats, by_card(ids), max_repeats=6, max_total_repeats=len(ids) // 2)
        assert sum(stats["cards"][c]["repeats"] for c in by_card(ids)) > 0


async def test_notification_chaos_and_receiver_restarts_give_the_fault_free_result(tmp_path: Path) -> None:
    async with proc_stack(tmp_path, step_delay_ms=20, reconcile_after=timedelta(seconds=2)) as st:
        st.start_worker()
        reference_ids = await start_orders(st, 20, "calm")
        reference = await final_views(st, reference_ids)

        await st.emulator(
            "POST",
            "/_emulator/faults",
            json={"notificationChaos": {"lossRatio": 0.1, "duplicateMax": 3, "maxDelayMs": 400, "seed": 7}},
        )
        ids: list[str] = []
        for turn in range(2):
            # Stop the receiver while D1 is delivering (not after a guessed delay), and see a
            # delivery hit the stopped receiver before it comes back.
            before = await st.emulator_stats()
            ids += await start_orders(st, 50, f"chaos{turn}")

            async def delivering(sent: int = before["notificationsSent"]) -> bool:
                return (await st.emulator_stats())["notificationsSent"] > sent

            await until(delivering, timeout=60, what="D1 delivered no notification of the new orders")
            await st.stop_receiver()
            stopped = await st.emulator_stats()

            async def refused(failed: int = stopped["notificationFailures"]) -> bool:
                return (await st.emulator_stats())["notificationFailures"] > failed

            await until(refused, timeout=60, what="no delivery hit the stopped receiver")
            await st.start_receiver()
        views = await final_views(st, ids, timeout=400)

        def essence(v: OrderView) -> tuple:
            s = v.state
            return (
                s.outcome,
                s.production_status,
                s.shipment.status if s.shipment else None,
                s.due_date,
                s.production_site,
            )

        expected = {essence(v) for v in reference.values()}
        assert len(expected) == 1
        assert {essence(v) for v in views.values()} == expected
        stats = await st.emulator_stats()
        assert stats["notificationsDropped"] > 0
        # Some orders only learned their outcome by asking D1.
        assert sum(v.state.reconciliations for v in views.values()) > 0
        assert sum(v.state.duplicates_ignored for v in views.values()) > 0
        # Notification trouble never reaches the submission: one order per card, no repeats
        # beyond a rare retried heartbeat.
        assert_exactly_once(stats, by_card(reference_ids + ids), max_repeats=1, max_total_repeats=5)
