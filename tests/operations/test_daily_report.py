"""Service levels on the real stack: a run of orders with known outcomes (delivered,
returned, failed, one shipped late) gives the right daily report from visibility, through
the CLI in CSV and JSON, and the service-level metrics on /metrics."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import worker
from contracts import card_order as api
from contracts.card_order import Outcome
from contracts.visibility import quote
from observability import names
from starter import cli
from starter.api import CardOrders
from starter.report import COLUMNS, daily_report
from tests.conftest import ISSUER_ID, new_request_id
from tests.operations.conftest import TASK_QUEUE, OpsStack, eventually, slow_timing
from tests.operations.test_metrics import parse, total
from tests.support.notifications import operation
from tests.support.orders import sample_order

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROGRAM = "DEMO_VISA_DEBIT_01"
URGENT = {"issuance": "CREATION", "priority": "URGENT", "delivery": "usps-imb", "cardCarrier": "carrier-welcome-en"}
RENEWAL = {"issuance": "RENEWAL", "priority": "STANDARD", "delivery": "usps-imb", "cardCarrier": "carrier-renewal-en"}


def now_op(status: str, **kw: Any) -> dict[str, Any]:
    op = operation(status, **kw)
    op["startTime"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return op


async def test_the_daily_report_of_a_run_with_known_outcomes(
    ops: OpsStack, calm_emulator: OpsStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = f"rep{uuid.uuid4().hex[:8]}"
    today = datetime.now(UTC).date()
    before = parse(await ops.metrics_text())

    def rid(tag: str) -> str:
        return new_request_id(f"{run}-{tag}")

    delivered = [rid("ok"), rid("ok")]
    renewal, returned, data_exception, rejected, late = (rid(t) for t in ("renew", "ret", "dex", "rej", "late"))
    for request_id in delivered:
        await ops.orders.submit(sample_order(request_id))
    await ops.orders.submit(sample_order(renewal, services=RENEWAL))
    await ops.orders.submit(sample_order(returned, card_id=f"emu-returned-{returned}"[:48]))
    await ops.orders.submit(sample_order(data_exception, card_id=f"emu-data-exception-{data_exception}"[:48]))
    for request_id, outcome in (
        *((r, Outcome.DELIVERED) for r in (*delivered, renewal)),
        (returned, Outcome.RETURNED),
        (data_exception, Outcome.DATA_EXCEPTION),
    ):
        assert (await ops.orders.wait(ISSUER_ID, request_id)).state.outcome == outcome
    await ops.faults(orderFailures=[{"status": 400, "count": 1, "errorCode": "FIELD_INVALID_FORMAT"}])
    await ops.orders.submit(sample_order(rejected))
    assert (await ops.orders.wait(ISSUER_ID, rejected)).state.outcome == Outcome.REJECTED

    # The late one: D1's news withheld, then ours: due two days ago, shipped and delivered now.
    await ops.faults(captureNotifications=True)
    await ops.orders.submit(sample_order(late, services=URGENT))
    view = await ops.orders.wait_for(ISSUER_ID, late, lambda v: v.state.operation_id is not None)
    ids = {"card_id": view.ref.card_id, "request_id": late, "operation_id": view.state.operation_id}
    due = (today - timedelta(days=2)).isoformat()
    assert (
        await ops.notify(now_op("DATA_PREPARED", dueDate=due, productionSite="SITE-LATE", **ids))
    ).status_code == 204
    assert (await ops.notify(now_op("CARD_SHIPPED", shipment_status="InfoReceived", **ids))).status_code == 204
    assert (await ops.notify(now_op("CARD_SHIPPED", shipment_status="Delivered", **ids))).status_code == 204
    final = await ops.orders.wait(ISSUER_ID, late)
    assert final.state.outcome == Outcome.DELIVERED
    assert final.state.shipped_late is True and final.state.late_hours is not None and final.state.late_hours > 0
    assert final.state.requested_at is not None and final.state.shipped_at is not None

    query = f'IssuerRequestId STARTS_WITH "{run}"'
    expected = {"requested": 7, "shipped": 5, "delivered": 4, "returned": 1, "failed": 2, "late": 1}

    async def settled() -> Any:
        report = await daily_report(ops.client, today, ISSUER_ID, query)
        return report if report.totals == expected else None

    report = await eventually(settled)
    assert report is not None, (await daily_report(ops.client, today, ISSUER_ID, query)).totals
    rows = report.as_dict()["rows"]
    assert isinstance(rows, list)
    # The breakdown adds up to the totals, and the late order has its own row.
    assert {c: sum(r[c] for r in rows) for c in COLUMNS} == expected
    assert {
        "program": PROGRAM,
        "site": "SITE-LATE",
        "issuance": "CREATION",
        "priority": "URGENT",
        **dict.fromkeys(("requested", "shipped", "delivered", "late"), 1),
        **dict.fromkeys(("returned", "failed"), 0),
    } in rows
    renewals = [r for r in rows if r["issuance"] == "RENEWAL"]
    assert [(r["priority"], r["requested"], r["delivered"]) for r in renewals] == [("STANDARD", 1, 1)]
    failed = [r for r in rows if r["failed"]]
    assert sum(r["failed"] for r in failed) == 2 and all(r["shipped"] == 0 for r in failed)
    # Another day has none of them.
    other = await daily_report(ops.client, today - timedelta(days=1), ISSUER_ID, query)
    assert set(other.totals.values()) == {0} and not other.rows

    # The CLI: CSV by default, JSON on request, the same counts.
    for key, value in ops.cli_env().items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    assert await cli.run(["report", "--date", today.isoformat(), "--query", query]) == 0
    lines = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {c: sum(int(r[c]) for r in lines) for c in COLUMNS} == expected
    assert {r["date"] for r in lines} == {today.isoformat()}
    assert await cli.run(["report", "--date", today.isoformat(), "--format", "json", "--query", query]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert as_json["totals"] == expected and as_json["date"] == today.isoformat()

    # The service-level metrics, from the workflows' metric meter.
    after = parse(await ops.metrics_text())

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta(f"{names.SHIPPED_LATE}_total", priority="URGENT", program=PROGRAM, issuance="CREATION") == 1
    assert delta(f"{names.RETURNED}_total") == 1
    assert delta(f"{names.EXCEPTIONS}_total", kind="DATA_EXCEPTION") == 1
    assert delta(f"{names.REQUEST_TO_SHIPPED}_count") == 5
    assert delta(f"{names.REQUEST_TO_DELIVERED}_count", issuance="RENEWAL", priority="STANDARD") == 1
    assert delta(f"{names.SHIPPED_TO_DELIVERED}_bucket", le="+Inf") == 4
    # The service-level buckets (observability/metrics.py), not the SDK's default ones.
    assert delta(f"{names.REQUEST_TO_SHIPPED}_bucket", le="3600") == 5


async def test_the_worker_gauges_count_open_orders_by_stage_and_those_past_due(
    ops: OpsStack, calm_emulator: OpsStack
) -> None:
    await ops.faults(captureNotifications=True)
    slow = CardOrders(ops.client, task_queue=TASK_QUEUE, timing=slow_timing(), edge=ops.orders.edge)
    request_id = new_request_id("due")
    await slow.submit(sample_order(request_id))
    view = await slow.wait_for(ISSUER_ID, request_id, lambda v: v.state.operation_id is not None)
    ids = {"card_id": view.ref.card_id, "request_id": request_id, "operation_id": view.state.operation_id}
    overdue = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    assert (await ops.notify(now_op("DATA_PREPARED", dueDate=overdue, **ids))).status_code == 204
    past_due_query = api.past_due_query()
    found = await eventually(lambda: _counted(ops, past_due_query, request_id))
    assert found, "the overdue order is not in the past-due query"

    watch = asyncio.create_task(worker.watch_orders(ops.client, every=timedelta(hours=1)))
    try:

        async def gauges() -> Any:
            # The watcher's first round is done once every stage has its gauge.
            samples = parse(await ops.metrics_text())
            stages = {ls.get("stage") for n, ls, _ in samples if n == names.ORDERS_OPEN}
            return samples if stages == set(api.OPEN_STAGES) else None

        samples = await eventually(gauges)
        assert samples is not None
        assert total(samples, names.ORDERS_PAST_DUE) == (await ops.client.count_workflows(past_due_query)).count
        assert total(samples, names.ORDERS_OPEN, stage="DATA_PREPARED") >= 1
    finally:
        watch.cancel()
        await ops.client.get_workflow_handle(api.workflow_id(ISSUER_ID, request_id)).terminate("test done")


async def _counted(ops: OpsStack, query: str, request_id: str) -> bool:
    return any([wf async for wf in ops.client.list_workflows(f"{query} AND IssuerRequestId = {quote(request_id)}")])
