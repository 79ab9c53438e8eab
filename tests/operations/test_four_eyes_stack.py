"""Four eyes on a new delivery address on the real stack (dev server, worker, receiver, the D1
emulator over HTTP): two operators, each with a client sealing as themselves, and the emulator
receives the REDIRECT only after the second one approved it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from contracts.card_order import ChangeStatus
from contracts.card_order import workflow_id as workflow_id_for
from security.codec import load_codec
from starter import cli
from starter.api import CardOrders, ChangeRejected
from temporal_client import data_converter
from tests.conftest import ISSUER_ID, new_request_id
from tests.operations.conftest import TASK_QUEUE, OpsStack, slow_timing
from tests.support.orders import sample_order
from workflows.audit import AUDIT_LOGGER

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALICE, BOB = "operator:alice", "operator:bob"
NEW_ADDRESS = {
    "firstName": "Jane",
    "lastName": "Sample",
    "line1": "5 Harbour Rd",
    "city": "Boston",
    "state": "MA",
    "zipCode": "02108",
    "countryCode": "US",
}


def sealed_as(ops: OpsStack, sealer: str) -> CardOrders:
    """A client sealing every message as ``sealer``: an operator's own key, or the edge's."""
    client = Client(
        ops.client.service_client,
        namespace=ops.client.namespace,
        data_converter=data_converter(load_codec(ops.codec_keys, seal_as=sealer)),
    )
    return CardOrders(client, task_queue=TASK_QUEUE, timing=slow_timing(), edge=ops.orders.edge)


async def emulated_changes(ops: OpsStack, card: str) -> list[dict[str, Any]]:
    orders = (await ops.emulator("GET", "/_emulator/orders", params={"cardId": card})).json()["orders"]
    changes: list[dict[str, Any]] = orders[-1]["_emulator"]["changes"]
    return changes


async def pull_and_change_requests(ops: OpsStack) -> int:
    return int((await ops.emulator("GET", "/_emulator/stats")).json()["pullAndChangeRequests"])


async def test_the_emulator_receives_the_redirect_only_after_a_second_operator_approved_it(
    ops: OpsStack, calm_emulator: OpsStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    alice, bob = sealed_as(ops, ALICE), sealed_as(ops, BOB)
    rid = new_request_id("four-eyes")
    card = f"card-{rid}"
    await ops.faults(stepDelayMs=60_000)  # production stays at its first step: still redirectable
    await sealed_as(ops, "edge").submit(sample_order(rid, card_id=card))  # the issuer edge starts orders
    await ops.orders.wait_for(ISSUER_ID, rid, lambda v: v.state.operation_id is not None)
    before = await pull_and_change_requests(ops)

    asked = await alice.redirect(ISSUER_ID, rid, NEW_ADDRESS, note="customer moved")
    assert asked.status is ChangeStatus.AWAITING_APPROVAL and asked.requested_by == ALICE
    with pytest.raises(ChangeRejected, match="second, different operator"):
        await alice.approve_change(ISSUER_ID, rid, asked.change_id)
    assert await pull_and_change_requests(ops) == before
    assert await emulated_changes(ops, card) == []

    view = await bob.status(ISSUER_ID, rid)
    waiting = view.state.changes[-1]
    assert (waiting.status, waiting.requested_by, waiting.redirected_to) == (
        ChangeStatus.AWAITING_APPROVAL,
        ALICE,
        "Boston, US",
    )
    assert waiting.approval_expires_at is not None

    approved = await bob.approve_change(ISSUER_ID, rid, asked.change_id)
    assert approved.status in (ChangeStatus.SENT, ChangeStatus.ACCEPTED)
    assert (approved.requested_by, approved.approved_by) == (ALICE, BOB)
    assert await pull_and_change_requests(ops) == before + 1
    [change] = await emulated_changes(ops, card)
    assert (change["type"], change["accepted"], change["newDeliveryAddress"]["line1"]) == (
        "REDIRECT",
        True,
        "5 Harbour Rd",
    )
    orders = (await ops.emulator("GET", "/_emulator/orders", params={"cardId": card})).json()["orders"]
    assert orders[-1]["_emulator"]["deliveryAddress"]["line1"] == "5 Harbour Rd"

    wid = workflow_id_for(ISSUER_ID, rid)
    entries = [getattr(r, "audit", None) for r in caplog.records if r.name == AUDIT_LOGGER]
    lines = [(e["who"], e["action"], e["result"]) for e in entries if e and e["workflow_id"] == wid]
    assert lines == [
        (ALICE, "redirect", "AWAITING_APPROVAL"),
        (ALICE, "approve_change", "REFUSED"),
        (BOB, "approve_change", "APPROVED"),
        (ALICE, "redirect", "SENT"),
    ]
    await ops.orders.handle(ISSUER_ID, rid).terminate("test done")


async def test_the_cli_names_who_asked_and_who_approved(
    ops: OpsStack,
    calm_emulator: OpsStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for key, value in ops.cli_env().items():
        monkeypatch.setenv(key, value)
    rid = new_request_id("four-eyes-cli")
    card = f"card-{rid}"
    await ops.faults(stepDelayMs=60_000)
    await sealed_as(ops, "edge").submit(sample_order(rid, card_id=card))
    await ops.orders.wait_for(ISSUER_ID, rid, lambda v: v.state.operation_id is not None)
    address = tmp_path / "address.json"
    address.write_text(json.dumps(NEW_ADDRESS))
    capsys.readouterr()

    monkeypatch.setenv("CODEC_DEV_OPERATOR", "alice")  # the CLI seals with this operator's key
    assert await cli.run(["redirect", rid, "--address", str(address)]) == 0
    asked = capsys.readouterr().out
    assert "AWAITING_APPROVAL to Boston, US, asked by operator:alice" in asked
    change_id = asked.split(":", 1)[0].split()[-1]
    assert f"approve {rid} {change_id}" in asked
    assert await cli.run(["approve", rid, change_id]) == cli.EXIT_REFUSED
    assert "a second, different operator must approve it" in capsys.readouterr().err
    assert await emulated_changes(ops, card) == []

    monkeypatch.setenv("CODEC_DEV_OPERATOR", "bob")
    assert await cli.run(["approve", rid, change_id]) == 0
    out = capsys.readouterr().out
    assert "asked by operator:alice, approved by operator:bob" in out
    assert [c["type"] for c in await emulated_changes(ops, card)] == ["REDIRECT"]
    assert await cli.run(["status", rid]) == 0
    assert "approved by operator:bob" in capsys.readouterr().out
    await ops.orders.handle(ISSUER_ID, rid).terminate("test done")
