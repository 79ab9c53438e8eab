"""The visibility queries of the README's operations guide, checked against the real dev
server, and the CLI operator commands built on them: list shortcuts, one order's
timeline, re-driving reconciliation for one order and for every stuck order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.card_order import Outcome
from contracts.card_order import workflow_id as workflow_id_for
from starter import cli
from starter import operations as ops_api
from starter.api import CardOrders
from tests.conftest import ISSUER_ID, new_request_id
from tests.operations.conftest import TASK_QUEUE, OpsStack, eventually, slow_timing
from tests.support.notifications import operation
from tests.support.orders import sample_order

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _ids(orders: CardOrders, query: str) -> set[str]:
    return {o.workflow_id for o in await orders.list(query)}


async def _in_production(ops: OpsStack, orders: CardOrders, rid: str, card: str, due: datetime) -> None:
    """Start an order whose D1 notifications are withheld, then tell it (as D1 would) that
    production is ongoing with the given due date."""
    await orders.submit(sample_order(rid, card_id=card))
    view = await orders.wait_for(ISSUER_ID, rid, lambda v: v.state.operation_id is not None)
    ongoing = operation(
        "CARD_PROD_ONGOING", card_id=card, request_id=rid, operation_id=view.state.operation_id,
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
    listed = capsys.readouterr().out
    assert w_rejected in listed and w_stuck in listed and "REJECTED" in listed and "CARD_PROD_ONGOING" in listed

    # One order's timeline: D1's steps and the order's milestones in the operator's words.
    assert await cli.run(["timeline", stuck]) == 0
    timeline = capsys.readouterr().out
    for expected in ("order started", "Submit order to D1: done",
                     "D1 notification received", "CARD_PROD_ONGOING", "now ProductionStatus → CARD_PROD_ONGOING"):
        assert expected in timeline, timeline
    assert "4111111111111111" not in timeline

    # Re-drive reconciliation for every stuck order: D1's status endpoint knows the card
    # was delivered long ago (its notifications were lost), so the order catches up.
    assert await cli.run(["reconcile", "--stuck"]) == 0
    out = capsys.readouterr()
    assert "reconciliation requested for 1 order(s)" in out.out
    assert "reconcile [" in out.err and "1/1" in out.err
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
