"""A worker SIGKILLed in the middle of D1's batch call: the call is retried by another
worker, D1 (the emulator) sees a repeat, and every card is still produced exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path

from contracts.card_order import Outcome
from starter.d1_batches import BatchLimits
from starter.order_file import submit_file
from tests.conftest import ISSUER_ID
from tests.reliability.procstack import proc_stack
from tests.reliability.test_faults import final_views
from tests.support.orders import sample_order

CARDS = 100


async def test_sigkill_worker_during_the_batch_call_produces_each_card_once(tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    rids = [f"bkill-{run}-{i:03d}" for i in range(CARDS)]
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(json.dumps(sample_order(r, card_id=f"c-{r}")) for r in rids) + "\n")
    async with proc_stack(tmp_path, step_delay_ms=50) as st:
        assert st.orders is not None
        st.start_worker()
        # D1 takes the batch (its cards go into production) but answers only after 8 s: the
        # worker is killed while it waits for that answer.
        await st.emulator(
            "POST",
            "/_emulator/faults",
            json={"batchFailures": [{"status": 503, "count": 1, "afterProcessing": True, "delayMs": 8000}]},
        )
        before = await st.emulator_stats()
        report = await submit_file(
            st.orders, path, default_issuer_id=ISSUER_ID, d1_batches=BatchLimits(), show_progress=False
        )
        assert report.exit_code == 0 and report.d1_batches == 1, report.summary()
        for _ in range(200):
            if (await st.emulator_stats())["batchCards"] - before["batchCards"] >= CARDS:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("D1 never received the batch")
        st.kill_workers(signal.SIGKILL)
        st.start_worker()
        views = await final_views(st, rids)
        assert {v.state.outcome for v in views.values()} == {Outcome.DELIVERED}
        stats = await st.emulator_stats()
        assert stats["batchRequests"] - before["batchRequests"] == 2  # the killed call, then its retry
        assert stats["batchRepeats"] - before["batchRepeats"] == CARDS
        assert {stats["cards"][f"c-{r}"]["accepted"] for r in rids} == {1}
        assert {stats["cards"][f"c-{r}"]["produced"] for r in rids} == {1}
