"""An order tracked for a long time stays cheap: continue-as-new keeps each run's history
bounded and carries the state, including the de-duplication memory."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from contracts.card_order import Outcome
from d1.paths import notification_path
from tests.conftest import ISSUER_ID, new_request_id
from tests.reliability.procstack import proc_stack
from tests.support.notifications import HAPPY_STEPS, operation
from tests.support.orders import sample_order

pytestmark = pytest.mark.asyncio

SUGGEST_CAN_AT = 300
UPDATES = 1000


async def test_thousand_shipment_updates_keep_each_run_bounded(tmp_path: Path) -> None:
    args = ["--dynamic-config-value", f"limit.historyCount.suggestContinueAsNew={SUGGEST_CAN_AT}"]
    async with proc_stack(
        tmp_path, extra_server_args=args, reconcile_after=timedelta(hours=1), quiet_after_shipped=timedelta(hours=1)
    ) as st:
        assert st.orders is not None and st.client is not None
        await st.emulator("POST", "/_emulator/faults", json={"captureNotifications": True})
        st.start_worker()
        rid = new_request_id("long")
        order = sample_order(rid)
        await st.orders.submit(order)
        view = await st.orders.wait_for(ISSUER_ID, rid, lambda v: v.state.operation_id is not None, timeout=60)
        op_id = view.state.operation_id
        common = {"card_id": order["cardId"], "request_id": rid, "operation_id": op_id}
        updates = [operation(s, **common) for s in HAPPY_STEPS]
        for i in range(UPDATES):
            u = operation("CARD_SHIPPED", shipment_status="InTransit", **common)
            u["details"]["shipment"]["message"] = f"scan {i:04d} at hub {i % 17}"
            updates.append(u)
        updates.append(operation("CARD_SHIPPED", shipment_status="Delivered", **common))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{st.receiver_port}", timeout=30) as http:
            for i, u in enumerate(updates):
                resp = await http.post(notification_path(ISSUER_ID), json={"operations": [u]})
                assert resp.status_code == 204
                if i % 100 == 0:  # a duplicate of an old update, after continue-as-new: still recognised
                    resp = await http.post(notification_path(ISSUER_ID), json={"operations": [updates[5]]})
                    assert resp.status_code == 204
        final = await asyncio.wait_for(st.orders.wait(ISSUER_ID, rid), timeout=120)
        assert final.state.outcome == Outcome.DELIVERED
        assert final.state.updates_applied == len(updates)
        assert final.state.duplicates_ignored >= UPDATES // 100
        assert len(final.state.timeline) <= 200
        runs = [wf async for wf in st.client.list_workflows(f'WorkflowId = "{final.workflow_id}"')]
        assert len(runs) >= 3, "continue-as-new never happened"
        lengths = []
        for run in runs:
            history = await st.client.get_workflow_handle(final.workflow_id, run_id=run.run_id).fetch_history()
            lengths.append(len(history.events))
        assert max(lengths) < SUGGEST_CAN_AT + 150, lengths
