"""A worker SIGKILLed in the middle of D1's batch call: the call is retried by another
worker, D1 (the emulator) sees a repeat, and every card is still produced exactly once."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

from contracts.card_order import Outcome
from starter.d1_batches import BatchLimits
from starter.order_file import submit_file
from tests.conftest import ISSUER_ID
from tests.reliability.procstack import proc_stack
from tests.reliability.test_faults import final_views, releasing_holds, until_callers_gone, until_held
from tests.support.exactly_once import assert_exactly_once
from tests.support.orders import sample_order

CARDS = 100


async def test_sigkill_worker_during_the_batch_call_produces_each_card_once(tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    rids = [f"bkill-{run}-{i:03d}" for i in range(CARDS)]
    cards = {f"c-{r}": r for r in rids}
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(json.dumps(sample_order(r, card_id=c)) for c, r in cards.items()) + "\n")
    async with proc_stack(tmp_path, step_delay_ms=50, d1_read_timeout_s=120) as st, releasing_holds(st):
        assert st.orders is not None
        st.start_worker()
        # D1 takes the batch (its cards go into production) and holds its answer until the
        # test releases it: the worker is killed while D1 holds the call.
        await st.emulator(
            "POST", "/_emulator/faults", json={"batchFailures": [{"hold": True, "afterProcessing": True}]}
        )
        report = await submit_file(
            st.orders, path, default_issuer_id=ISSUER_ID, d1_batches=BatchLimits(), show_progress=False
        )
        assert report.exit_code == 0 and report.d1_batches == 1, report.summary()
        await until_held(st, 1, kind="batch")
        held = await st.emulator_stats()
        assert held["batchRequests"] == 1 and held["batchAccepted"] == CARDS  # taken, not answered
        st.kill_workers(signal.SIGKILL)
        await until_callers_gone(st, 1)
        await st.emulator("POST", "/_emulator/holds/release")
        st.start_worker()
        views = await final_views(st, rids)
        assert {v.state.outcome for v in views.values()} == {Outcome.DELIVERED}
        stats = await st.emulator_stats()
        assert stats["batchRequests"] == 2  # the killed call, then its retry
        assert stats["batchRepeats"] == CARDS
        assert_exactly_once(stats, cards, forced=set(cards))
