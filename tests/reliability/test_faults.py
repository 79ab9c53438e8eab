"""No order is lost, duplicated or stuck, whatever fails. Each test breaks something on
purpose on the real Temporal server, the real receiver and the emulator."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from contracts.card_order import OrderView, Outcome
from tests.conftest import ISSUER_ID, new_request_id
from tests.reliability.procstack import ProcStack, proc_stack
from tests.support.orders import sample_order

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

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in ids)), timeout=timeout)
    return out


async def count_progressed(st: ProcStack, ids: list[str]) -> int:
    stats = await st.emulator_stats()
    return sum(1 for i in ids if stats["submissions"].get(i))


async def test_sigkill_worker_with_200_orders_in_flight(tmp_path: Path) -> None:
    async with proc_stack(tmp_path, step_delay_ms=100) as st:
        st.start_worker()
        ids = await start_orders(st, 200, "kill")
        while await count_progressed(st, ids) < 60:
            await asyncio.sleep(0.1)
        st.kill_workers(signal.SIGKILL)
        st.start_worker()
        views = await final_views(st, ids)
        assert {v.state.outcome for v in views.values()} == {Outcome.DELIVERED}
        stats = await st.emulator_stats()
        assert [stats["submissions"].get(i) for i in ids] == [1] * 200


async def test_temporal_server_restart_in_the_middle_of_100_orders(tmp_path: Path) -> None:
    async with proc_stack(tmp_path, step_delay_ms=100, reconcile_after=timedelta(seconds=5)) as st:
        st.start_worker()
        ids = await start_orders(st, 100, "restart")
        while await count_progressed(st, ids) < 30:
            await asyncio.sleep(0.1)
        st.stop_temporal()
        await asyncio.sleep(2)
        st.start_temporal()
        views = await final_views(st, ids)
        assert {v.state.outcome for v in views.values()} == {Outcome.DELIVERED}
        stats = await st.emulator_stats()
        assert [stats["submissions"].get(i) for i in ids] == [1] * 100
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
        assert [stats["submissions"].get(i) for i in ids] == [1] * 200
        assert stats["orderRequests"] > 200 * 1.2  # the faults really happened and were retried


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
        ids = await start_orders(st, 100, "chaos")
        for _ in range(2):
            await asyncio.sleep(1.0)
            await st.stop_receiver()
            await asyncio.sleep(0.7)
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
