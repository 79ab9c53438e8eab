"""Records the replay histories, one per scenario, from the current code (run on purpose,
never in CI):

    RECORD_HISTORIES=1 .venv/bin/pytest tests/histories/test_record.py

It writes ``<scenario>.history.json`` (the set tests/histories/test_replay.py expects),
sealed with the committed test-only codec key (tests/conftest.py). Until the first release
a workflow change re-records them all; from then on the last release's histories are kept
and replayed (docs/upgrading.md): never re-record to "fix" a failing replay.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client

from contracts.card_order import ChangeStatus, OrderView, Outcome
from contracts.card_tracking import TrackingResult
from security.codec import load_codec
from starter.api import CardOrders
from temporal_client import data_converter
from tests.conftest import ISSUER_ID, TASK_QUEUE, Stack, fast_timing, new_request_id
from tests.histories import HISTORIES_DIR
from tests.support.orders import sample_order

NEW_ADDRESS = {"line1": "5 Harbour Rd", "city": "Boston", "state": "MA", "zipCode": "02108", "countryCode": "US"}

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(not os.environ.get("RECORD_HISTORIES"), reason="records histories only when asked"),
]


async def _save(stack: Stack, name: str, view: OrderView) -> None:
    history = await stack.client.get_workflow_handle(view.workflow_id).fetch_history()
    doc = {"workflow_id": view.workflow_id, "outcome": view.state.outcome, "history": history.to_json_dict()}
    (HISTORIES_DIR / f"{name}.history.json").write_text(json.dumps(doc, indent=1, default=str))


async def test_record_happy(stack: Stack) -> None:
    rid = new_request_id("happy")
    await stack.orders.submit(sample_order(rid))
    view = await stack.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome == Outcome.DELIVERED
    await _save(stack, "happy", view)


async def test_record_rejected(stack: Stack) -> None:
    rid = new_request_id("rejected")
    await stack.emulator(
        "POST",
        "/_emulator/faults",
        json={"orderFailures": [{"status": 400, "count": 1, "errorCode": "FIELD_INVALID_FORMAT", "error": "x"}]},
    )
    await stack.orders.submit(sample_order(rid))
    view = await stack.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome == Outcome.REJECTED
    await _save(stack, "rejected", view)


async def test_record_reconciled(stack: Stack, clean_emulator: Stack) -> None:
    rid = new_request_id("reconciled")
    await stack.emulator("POST", "/_emulator/faults", json={"dropNotifications": True})
    saved, stack.orders.timing = stack.orders.timing, fast_timing(reconcile_after=timedelta(seconds=1))
    try:
        await stack.orders.submit(sample_order(rid))
    finally:
        stack.orders.timing = saved
    view = await stack.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome == Outcome.DELIVERED and view.state.reconciliations > 0
    await _save(stack, "reconciled", view)


async def test_record_canceled(stack: Stack) -> None:
    rid = new_request_id("canceled")
    await stack.emulator("POST", "/_emulator/faults", json={"stepDelayMs": 400})
    try:
        await stack.orders.submit(sample_order(rid))
        await stack.orders.wait_for(ISSUER_ID, rid, lambda v: v.state.production_status is not None)
        await stack.orders.cancel(ISSUER_ID, rid)
        view = await stack.orders.wait(ISSUER_ID, rid)
    finally:
        await stack.emulator("POST", "/_emulator/faults", json={"stepDelayMs": 20})
    assert view.state.outcome == Outcome.CANCELED
    await _save(stack, "canceled", view)


async def test_record_redirect_approved(stack: Stack, codec_keys_file: Path) -> None:
    """Four eyes: a redirect waits for a second operator, who approves it (the approval, the
    expiry timer it arms and cancels, the D1 call after it)."""
    rid = new_request_id("redirect")
    approver_client = Client(
        stack.client.service_client,
        namespace=stack.client.namespace,
        data_converter=data_converter(load_codec(codec_keys_file, seal_as="operator:approver")),
    )
    approver = CardOrders(approver_client, task_queue=TASK_QUEUE, edge=stack.orders.edge)
    await stack.emulator("POST", "/_emulator/faults", json={"stepDelayMs": 400})
    try:
        await stack.orders.submit(sample_order(rid))
        await stack.orders.wait_for(ISSUER_ID, rid, lambda v: v.state.production_status is not None)
        asked = await stack.orders.redirect(ISSUER_ID, rid, NEW_ADDRESS)
        assert asked.status is ChangeStatus.AWAITING_APPROVAL
        await approver.approve_change(ISSUER_ID, rid, asked.change_id)
        view = await stack.orders.wait(ISSUER_ID, rid)
    finally:
        await stack.emulator("POST", "/_emulator/faults", json={"stepDelayMs": 20})
    assert view.state.outcome == Outcome.DELIVERED
    assert [(c.type, c.status, c.approved_by) for c in view.state.changes] == [
        ("REDIRECT", ChangeStatus.ACCEPTED, "operator:approver")
    ]
    await _save(stack, "redirect-approved", view)


async def test_record_bulk(stack: Stack) -> None:
    group = new_request_id("grp")
    ids = [new_request_id("bulk") for _ in range(3)]
    for rid in ids:
        order = sample_order(rid)
        order["shipment"] = {
            "type": "BULK",
            "groupId": group,
            "orderId": f"dispatch-{group}",
            "deliveryAddress": {
                "companyName": "Demo Bank Branch 017",
                "line1": "1 Plaza Ave",
                "city": "Chicago",
                "zipCode": "60601",
                "countryCode": "US",
            },
        }
        await stack.orders.submit(order)
    views = [await stack.orders.wait(ISSUER_ID, rid) for rid in ids]
    assert all(v.state.production_status == "CARD_SHIPPED" for v in views)
    await _save(stack, "bulk", views[0])


async def test_record_data_exception(stack: Stack) -> None:
    rid = new_request_id("dataexc")
    await stack.emulator("POST", "/_emulator/faults", json={"dataExceptions": 1})
    await stack.orders.submit(sample_order(rid))
    view = await stack.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome == Outcome.DATA_EXCEPTION
    await _save(stack, "data-exception", view)


async def test_record_d1_batch(stack: Stack, tmp_path: Path) -> None:
    """A D1 batch of three cards: the batch workflow, and one of its cards."""
    from contracts import d1_batch
    from contracts.card_order import workflow_id
    from starter.d1_batches import BatchLimits
    from starter.order_file import submit_file

    rids = [new_request_id("inbatch") for _ in range(3)]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(json.dumps(sample_order(r)) for r in rids) + "\n")
    report = await submit_file(
        stack.orders, path, default_issuer_id=ISSUER_ID, d1_batches=BatchLimits(), show_progress=False
    )
    assert report.d1_batches == 1
    view = await stack.orders.wait(ISSUER_ID, rids[0])
    assert view.state.outcome == Outcome.DELIVERED
    await _save(stack, "batch-card", view)
    batch_id = d1_batch.workflow_id(ISSUER_ID, d1_batch.batch_key(workflow_id(ISSUER_ID, r) for r in rids))
    handle = stack.client.get_workflow_handle(batch_id)
    await handle.result()
    doc = {"workflow_id": batch_id, "outcome": None, "history": (await handle.fetch_history()).to_json_dict()}
    (HISTORIES_DIR / "d1-batch.history.json").write_text(json.dumps(doc, indent=1, default=str))


async def test_record_tracking(stack: Stack) -> None:
    card = new_request_id("tracked")
    await stack.orders.track(
        ISSUER_ID, card, "SHIPMENT", details={"shipment": {"carrier": "dhl", "trackingNumber": "JD014600006"}}
    )
    handle = stack.orders.client.get_workflow_handle(
        stack.orders.tracking_handle(ISSUER_ID, card, "SHIPMENT").id, result_type=TrackingResult
    )
    result: TrackingResult = await handle.result()
    assert result.outcome == Outcome.DELIVERED
    history = (await handle.fetch_history()).to_json_dict()
    doc = {"workflow_id": handle.id, "outcome": result.outcome, "history": history}
    (HISTORIES_DIR / "tracking-shipment.history.json").write_text(json.dumps(doc, indent=1, default=str))
