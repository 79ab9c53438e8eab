"""The visibility queries of the README's operations guide, checked against the real dev
server, and the CLI operator commands built on them: list shortcuts, one order's
timeline, re-driving reconciliation for one order and for every stuck order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.service import RPCError, RPCStatusCode

from contracts.card_order import OrderView, Outcome
from contracts.card_order import workflow_id as workflow_id_for
from starter import cli
from starter import operations as ops_api
from starter.api import CardOrders
from tests.conftest import ISSUER_ID, new_request_id
from tests.operations.conftest import TASK_QUEUE, OpsStack, eventually, slow_timing
from tests.support.notifications import operation
from tests.support.orders import TEST_PAN, sample_order

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _ids(orders: CardOrders, query: str) -> set[str]:
    return {o.workflow_id for o in await orders.list(query)}


async def _in_production(ops: OpsStack, orders: CardOrders, rid: str, card: str, due: datetime) -> None:
    """Start an order whose D1 notifications are withheld, then tell it (as D1 would) that
    production is ongoing with the given due date."""
    await orders.submit(sample_order(rid, card_id=card))
    view = await orders.wait_for(ISSUER_ID, rid, lambda v: v.state.operation_id is not None)
    ongoing = operation(
        "CARD_PROD_ONGOING",
        card_id=card,
        request_id=rid,
        operation_id=view.state.operation_id,
        dueDate=due.date().isoformat(),
    )
    assert (await ops.notify(ongoing)).status_code == 204
    await orders.wait_for(ISSUER_ID, rid, lambda v: v.state.production_status == "CARD_PROD_ONGOING")


async def test_operator_queries_and_cli_commands(
    ops: OpsStack, calm_emulator: OpsStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in ops.cli_env().items():
        monkeypatch.setenv(key, value)
    orders = CardOrders(ops.client, task_queue=TASK_QUEUE, timing=slow_timing(), edge=ops.orders.edge)
    card = f"card-{new_request_id('hist')}"
    rejected, stuck, on_time = new_request_id("q-rej"), new_request_id("q-stuck"), new_request_id("q-ontime")

    # One card's history: a first order D1 rejected, then a second one stuck in production.
    await ops.faults(orderFailures=[{"status": 400, "count": 1, "errorCode": "FIELD_INVALID_FORMAT"}])
    await orders.submit(sample_order(rejected, card_id=card))
    assert (await orders.wait(ISSUER_ID, rejected)).state.outcome == Outcome.REJECTED
    await ops.faults(captureNotifications=True)  # D1's notifications get lost from now on
    now = datetime.now(UTC)
    await _in_production(ops, orders, stuck, card, now - timedelta(days=2))
    await _in_production(ops, orders, on_time, f"card-{on_time}", now + timedelta(days=2))
    w_rejected, w_stuck, w_on_time = (workflow_id_for(ISSUER_ID, r) for r in (rejected, stuck, on_time))

    # The README's queries, as they are, against the dev server.
    stuck_q, rejected_q, card_q = ops_api.stuck_query(), ops_api.rejected_today_query(), ops_api.card_query(card)
    found = await eventually(lambda: _ids(orders, stuck_q))
    assert w_stuck in found and w_on_time not in found and w_rejected not in found
    assert w_rejected in await eventually(lambda: _ids(orders, rejected_q))
    assert await eventually(lambda: _ids(orders, card_q)) >= {w_rejected, w_stuck}
    assert await _ids(orders, card_q) == {w_rejected, w_stuck}
    yesterday = ops_api.rejected_since_query(ops_api.start_of_day() + timedelta(days=1))
    assert w_rejected not in await _ids(orders, yesterday)

    # The same through the CLI shortcuts.
    capsys.readouterr()
    assert await cli.run(["list", "--stuck", "--show-query"]) == 0
    out = capsys.readouterr()
    assert w_stuck in out.out and w_on_time not in out.out
    assert 'ProductionStatus = "CARD_PROD_ONGOING" AND DueDate <' in out.err
    assert await cli.run(["list", "--rejected-today"]) == 0
    assert w_rejected in capsys.readouterr().out
    assert await cli.run(["list", "--card", card]) == 0
    listed = capsys.readouterr().out.splitlines()
    # A table with a header row, then one order per line (greppable, no box drawing in a pipe).
    assert listed[0].split() == ["WorkflowId", "Status", "CardId", "ProductionStatus", "Outcome"]
    rows = {line.split()[0]: line.split() for line in listed[1:]}
    assert set(rows) == {w_rejected, w_stuck}
    assert rows[w_rejected][2:] == [card, "-", "REJECTED"] and rows[w_stuck][1:] == [
        "RUNNING",
        card,
        "CARD_PROD_ONGOING",
        "-",
    ]

    # -o json: the same orders as objects a script can read.
    assert await cli.run(["list", "--card", card, "-o", "json"]) == 0
    as_json = {o["workflow_id"]: o for o in json.loads(capsys.readouterr().out)}
    assert set(as_json) == {w_rejected, w_stuck}
    assert as_json[w_stuck] == {
        "workflow_id": w_stuck,
        "status": "RUNNING",
        "card_id": card,
        "issuer_request_id": stuck,
        "production_status": "CARD_PROD_ONGOING",
        "outcome": None,
    }
    assert as_json[w_rejected]["outcome"] == "REJECTED" and as_json[w_rejected]["issuer_request_id"] == rejected
    assert await cli.run(["list", "--card", f"card-{new_request_id('none')}", "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []

    # status -o json: the masked view itself (it parses back into an OrderView).
    assert await cli.run(["status", stuck, "-o", "json"]) == 0
    printed = capsys.readouterr().out
    view = OrderView.model_validate(json.loads(printed))
    assert view.workflow_id == w_stuck and view.state.production_status == "CARD_PROD_ONGOING"
    assert view.ref.masked_pan and TEST_PAN not in printed and TEST_PAN[6:] not in printed

    # One order's timeline: D1's steps and the order's milestones in the operator's words.
    assert await cli.run(["timeline", stuck]) == 0
    timeline = capsys.readouterr().out
    for expected in (
        "order started",
        "Submit order to D1: done",
        "D1 notification received",
        "CARD_PROD_ONGOING",
        "now ProductionStatus → CARD_PROD_ONGOING",
    ):
        assert expected in timeline, timeline
    assert "4111111111111111" not in timeline
    assert await cli.run(["timeline", stuck, "-o", "json"]) == 0
    steps = json.loads(capsys.readouterr().out)
    assert steps and all(set(step) == {"at", "source", "text"} for step in steps)
    assert ("order", "order started") in [(step["source"], step["text"]) for step in steps]
    dated = [datetime.fromisoformat(step["at"]) for step in steps if step["at"]]
    assert dated == sorted(dated) and all(at.utcoffset() == timedelta(0) for at in dated)
    assert any(step["source"] == "D1" and step["text"].startswith("CARD_PROD_ONGOING") for step in steps)

    # Re-drive reconciliation for every stuck order: D1's status endpoint knows the card
    # was delivered long ago (its notifications were lost), so the order catches up.
    assert await cli.run(["reconcile", "--stuck"]) == 0
    out = capsys.readouterr()
    assert "reconciliation requested for 1 order(s)" in out.out
    # Progress on stderr; not a terminal here, so plain lines and no redraw sequences.
    assert out.err.splitlines() == ["reconcile: 0/1 (0%)", "reconcile: 1/1 (100%)"]
    view = await orders.wait(ISSUER_ID, stuck)
    assert view.state.outcome == Outcome.DELIVERED and view.state.reconciliations >= 1
    assert any(t.source == "reconciliation" for t in view.state.timeline)
    assert await eventually(lambda: _absent(orders, stuck_q, w_stuck))

    # ... and for one order.
    assert await cli.run(["reconcile", on_time]) == 0
    assert "reconciliation requested" in capsys.readouterr().out
    assert (await orders.wait(ISSUER_ID, on_time)).state.outcome == Outcome.DELIVERED
    assert await cli.run(["reconcile", on_time]) == cli.EXIT_NOT_FOUND  # closed now


async def _absent(orders: CardOrders, query: str, workflow_id: str) -> bool:
    return workflow_id not in await _ids(orders, query)


async def test_register_search_attributes_sets_up_a_new_namespace_once(
    ops: OpsStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the deployment's temporal-setup job runs (python -m starter register-search-attributes)."""
    from google.protobuf.duration_pb2 import Duration
    from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest

    from contracts import search_attributes as sa

    namespace = new_request_id("ns")
    await ops.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=Duration(seconds=86_400))
    )
    for key, value in ops.cli_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", namespace)
    capsys.readouterr()
    assert await cli.run(["register-search-attributes", "--wait", "30"]) == 0
    assert f"namespace {namespace}: registered " in capsys.readouterr().out
    assert await ops_api.register_search_attributes(ops.client, namespace) == []  # idempotent
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    listed = await ops.client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    assert {k.name for k in sa.ALL} <= set(listed.custom_attributes)


async def test_pull_and_change_commands(
    ops: OpsStack, calm_emulator: OpsStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in ops.cli_env().items():
        monkeypatch.setenv(key, value)
    orders = CardOrders(ops.client, task_queue=TASK_QUEUE, timing=slow_timing(), edge=ops.orders.edge)
    rid = new_request_id("q-cancel")
    await ops.faults(stepDelayMs=60_000)  # production stays at its first step: still cancelable
    await orders.submit(sample_order(rid, card_id=f"card-{rid}"))
    await orders.wait_for(ISSUER_ID, rid, lambda v: v.state.operation_id is not None)
    capsys.readouterr()
    assert await cli.run(["redirect", rid]) == cli.EXIT_INVALID
    assert "--address" in capsys.readouterr().err
    assert await cli.run(["cancel", rid, "--note", "customer asked"]) == 0
    assert "cancel " in capsys.readouterr().out
    view = await orders.wait_for(ISSUER_ID, rid, lambda v: v.state.changes and v.state.changes[-1].note is not None)
    assert view.state.changes[-1].type == "CANCEL" and view.state.changes[-1].note == "customer asked"
    assert await cli.run(["cancel", new_request_id("never")]) in (cli.EXIT_REFUSED, cli.EXIT_NOT_FOUND)


async def test_submit_of_a_misspelt_member_suggests_the_name_and_starts_nothing(
    ops: OpsStack,
    calm_emulator: OpsStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The README's promise: ``pinMailler`` gets "did you mean 'pinMailer'?", exit 2, and no
    order exists afterwards; the same file with the name fixed does start one."""
    for key, value in ops.cli_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("D1_ENCRYPTION_PUBLIC_KEY_FILE", str(ops.tmp / "emulator" / "d1-encryption-public.jwk"))
    rid = new_request_id("typo")
    order = sample_order(rid, card_id=f"card-{rid}")
    order["services"]["pinMailler"] = order["services"].pop("pinMailer", True)
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order))
    handle = ops.client.get_workflow_handle(workflow_id_for(ISSUER_ID, rid))
    capsys.readouterr()

    assert await cli.run(["submit", str(path)]) == cli.EXIT_INVALID
    out = capsys.readouterr()
    assert out.out == ""
    assert "nothing was started (1 problem(s))" in out.err
    assert "  - $.services.pinMailler: is not a field of the D1 order; did you mean 'pinMailer'?" in out.err
    assert TEST_PAN[:6] not in out.err
    with pytest.raises(RPCError) as missing:
        await handle.describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    stats = (await ops.emulator("GET", "/_emulator/stats")).json()
    assert rid not in stats["submissions"]

    # The control: fixed, the same file starts the order (so the checks above can fail).
    order["services"]["pinMailer"] = order["services"].pop("pinMailler")
    path.write_text(json.dumps(order))
    try:
        assert await cli.run(["submit", str(path)]) == 0
        assert capsys.readouterr().out.strip() == f"{handle.id} started"
        assert (await handle.describe()).id == handle.id
    finally:
        await handle.terminate("test cleanup")
