"""Four eyes on a new delivery address, on the time-skipping server (workflows/approvals.py).

Two operators, each with a client sealing as themselves (``operator:alice``, ``operator:bob``):
a redirect reaches D1 (the activity double) only after the *other* one approved it; the one
who asked cannot approve; unapproved for 24 h it expires and the order goes on unchanged; a
program with four eyes off sends it at once. Every step is an audit line naming the sealer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from contracts import card_order as api
from contracts.card_order import (
    ApprovalPolicy,
    ChangeDecision,
    ChangeRecord,
    ChangeRequest,
    ChangeStatus,
    OrderResult,
    OrderView,
    Outcome,
)
from d1.notifications import OperationNotification
from d1.order import Address
from temporal_client import data_converter
from tests.support.notifications import happy_sequence
from tests.workflows.conftest import TASK_QUEUE, FastEnv, final_view, new_ids
from workflows.audit import AUDIT_LOGGER

ALICE, BOB = "operator:alice", "operator:bob"
ADDRESS = Address(firstName="Jane", lastName="Sample", line1="1 New St", city="Lyon", zipCode="69001", countryCode="FR")


def sealed_as(fast: FastEnv, sealer: str) -> Client:
    """The tests' client (messages issued at the test server's time) sealing every message as
    ``sealer``: an operator, the edge, the receiver."""
    config = fast.client.config()
    config["data_converter"] = data_converter(fast.codec.sealing_as(sealer))
    return Client(**config)


async def start(
    fast: FastEnv, prefix: str, policy: ApprovalPolicy | None = None
) -> tuple[WorkflowHandle[Any, Any], str, str]:
    """An order D1 acknowledged (not shipped: a redirect can be asked); the handle of its start
    (the one whose ``result()`` lets the test server skip time)."""
    card, rid = new_ids(prefix)
    inp = fast.order_input(card, rid)
    if policy is not None:
        inp = inp.model_copy(update={"approvals": policy})
    handle = await sealed_as(fast, "edge").start_workflow(
        api.WORKFLOW_TYPE, inp, id=api.workflow_id("TESTISS001", rid), task_queue=TASK_QUEUE, result_type=OrderResult
    )
    steps = [OperationNotification.model_validate(o) for o in happy_sequence(card_id=card, request_id=rid)[:2]]
    for step in steps:  # acknowledged by D1, not shipped: a redirect can be asked
        await notify(fast, rid, step)
    await until(handle, lambda v: v.state.production_status is not None)
    return handle, card, rid


async def notify(fast: FastEnv, rid: str, step: OperationNotification) -> None:
    notification = api.Notification(operation=step)
    await handle_of(sealed_as(fast, "receiver"), rid).signal(api.NOTIFICATION_SIGNAL, notification)


def handle_of(client: Client, rid: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(api.workflow_id("TESTISS001", rid), result_type=OrderResult)


async def until(
    handle: WorkflowHandle[Any, Any], predicate: Callable[[OrderView], bool], within_s: float = 20
) -> OrderView:
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        view: OrderView = await handle.query(api.VIEW_QUERY, result_type=OrderView)
        if predicate(view):
            return view
        assert asyncio.get_running_loop().time() < deadline, f"condition not reached: {view.state}"
        await asyncio.sleep(0.05)


async def redirect(fast: FastEnv, client: Client, rid: str, update: str = api.REDIRECT_UPDATE) -> ChangeRecord:
    request = ChangeRequest(kind=update, new_delivery_address=ADDRESS, note="moved")  # type: ignore[arg-type]
    record: ChangeRecord = await handle_of(client, rid).execute_update(update, request, result_type=ChangeRecord)
    return record


async def decide(
    fast: FastEnv, client: Client, rid: str, change_id: str, update: str = api.APPROVE_CHANGE_UPDATE
) -> ChangeRecord:
    decision = ChangeDecision(kind=update, change_id=change_id)  # type: ignore[arg-type]
    record: ChangeRecord = await handle_of(client, rid).execute_update(update, decision, result_type=ChangeRecord)
    return record


async def refused(call: Any) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await call
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.message


def audit_lines(caplog: pytest.LogCaptureFixture, workflow_id: str) -> list[tuple[str, str, str]]:
    entries = [getattr(r, "audit", None) for r in caplog.records if r.name == AUDIT_LOGGER]
    return [(e["who"], e["action"], e["result"]) for e in entries if e and e["workflow_id"] == workflow_id]


async def test_a_redirect_reaches_d1_only_after_a_second_operator_approved_it(
    fast: FastEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    alice, bob = sealed_as(fast, ALICE), sealed_as(fast, BOB)
    handle, card, rid = await start(fast, "four-eyes")

    asked = await redirect(fast, alice, rid)
    assert asked.status is ChangeStatus.AWAITING_APPROVAL and asked.requested_by == ALICE
    assert asked.approval_expires_at is not None and asked.redirected_to == "Lyon, FR"
    assert fast.d1.changes[card] == []  # D1 not asked

    assert "second, different operator" in await refused(decide(fast, alice, rid, asked.change_id))
    # Nothing else moves the address while it waits; a cancel still can (not tried here).
    assert "waiting for a second operator" in await refused(redirect(fast, bob, rid))
    assert fast.d1.changes[card] == []

    approved = await decide(fast, bob, rid, asked.change_id)
    assert approved.status is ChangeStatus.SENT
    assert (approved.requested_by, approved.approved_by) == (ALICE, BOB) and approved.approved_at
    assert fast.d1.changes[card] == [
        {"type": "REDIRECT", "newDeliveryAddress": ADDRESS.model_dump(mode="json", exclude_none=True)}
    ]
    assert "not waiting for approval (it is SENT)" in await refused(
        decide(fast, bob, rid, asked.change_id)
    )  # once only
    view = await until(handle, lambda v: v.state.changes[0].status is ChangeStatus.SENT)
    assert view.state.changes[0].approved_by == BOB

    wid = api.workflow_id("TESTISS001", rid)
    assert audit_lines(caplog, wid) == [
        (ALICE, "redirect", "AWAITING_APPROVAL"),
        (ALICE, "approve_change", "REFUSED"),
        (BOB, "redirect", "REFUSED"),
        (BOB, "approve_change", "APPROVED"),
        (ALICE, "redirect", "SENT"),
        (BOB, "approve_change", "REFUSED"),
    ]
    # What the view and the history keep: no street, no name (the address waits out of view).
    assert "1 New St" not in json.dumps(view.model_dump(mode="json"))
    await handle.terminate("test done")


async def test_an_unapproved_redirect_expires_after_24_hours_and_the_order_goes_on(
    fast: FastEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    alice, bob = sealed_as(fast, ALICE), sealed_as(fast, BOB)
    handle, card, rid = await start(fast, "expiry")
    asked = await redirect(fast, alice, rid, api.ACCELERATE_AND_REDIRECT_UPDATE)
    assert asked.status is ChangeStatus.AWAITING_APPROVAL and asked.type == "ACCELERATE_AND_REDIRECT"

    await fast.env.sleep(timedelta(hours=24, minutes=1))
    view = await until(handle, lambda v: v.state.changes[0].status is ChangeStatus.EXPIRED)
    assert view.state.changes[0].approved_by is None and view.state.changes[0].d1_operation_id is None
    assert "not waiting for approval (it is EXPIRED)" in await refused(decide(fast, bob, rid, asked.change_id))
    assert fast.d1.changes[card] == []

    # The order goes on unchanged: the rest of D1's steps deliver it.
    for step in happy_sequence(card_id=card, request_id=rid)[2:]:
        await notify(fast, rid, OperationNotification.model_validate(step))
    result = await final_view(handle)
    assert result.state.outcome is Outcome.DELIVERED
    assert [c.status for c in result.state.changes] == [ChangeStatus.EXPIRED]
    assert fast.d1.changes[card] == []
    assert audit_lines(caplog, result.workflow_id) == [
        (ALICE, "accelerate_and_redirect", "AWAITING_APPROVAL"),
        ("worker", "approval", "EXPIRED"),
        (BOB, "approve_change", "REFUSED"),
    ]


async def test_the_requester_withdraws_and_may_ask_again(fast: FastEnv) -> None:
    alice, bob = sealed_as(fast, ALICE), sealed_as(fast, BOB)
    handle, card, rid = await start(fast, "withdraw")
    first = await redirect(fast, alice, rid)
    withdrawn = await decide(fast, alice, rid, first.change_id, api.REJECT_CHANGE_UPDATE)
    assert withdrawn.status is ChangeStatus.REJECTED and withdrawn.rejected_by == ALICE
    assert "not waiting for approval" in await refused(decide(fast, bob, rid, first.change_id))
    second = await redirect(fast, alice, rid)
    assert second.change_id != first.change_id and second.status is ChangeStatus.AWAITING_APPROVAL
    assert (await decide(fast, bob, rid, second.change_id)).status is ChangeStatus.SENT
    assert len(fast.d1.changes[card]) == 1
    await handle.terminate("test done")


async def test_cancel_and_accelerate_need_no_second_operator_and_name_who_asked(fast: FastEnv) -> None:
    alice = sealed_as(fast, ALICE)
    handle, card, rid = await start(fast, "named")
    request = ChangeRequest(kind="accelerate", note="vip")
    record = await handle_of(alice, rid).execute_update(api.ACCELERATE_UPDATE, request, result_type=ChangeRecord)
    assert record.status is ChangeStatus.SENT and record.requested_by == ALICE and record.approved_by is None
    assert fast.d1.changes[card] == [{"type": "ACCELERATE"}]
    await handle.terminate("test done")


async def test_with_four_eyes_off_a_redirect_goes_to_d1_at_once(fast: FastEnv) -> None:
    alice = sealed_as(fast, ALICE)
    handle, card, rid = await start(fast, "no-four-eyes", ApprovalPolicy(four_eyes=False))
    record = await redirect(fast, alice, rid)
    assert record.status is ChangeStatus.SENT and record.requested_by == ALICE and record.approval_expires_at is None
    assert [c["type"] for c in fast.d1.changes[card]] == ["REDIRECT"]
    await handle.terminate("test done")


async def test_a_cancel_goes_through_while_a_redirect_waits_and_the_redirect_can_no_longer_be_approved(
    fast: FastEnv,
) -> None:
    alice, bob = sealed_as(fast, ALICE), sealed_as(fast, BOB)
    handle, card, rid = await start(fast, "cancel-first")
    asked = await redirect(fast, alice, rid)
    cancel = ChangeRequest(kind="cancel", note="card lost")
    canceled = await handle_of(bob, rid).execute_update(api.CANCEL_UPDATE, cancel, result_type=ChangeRecord)
    assert canceled.status is ChangeStatus.SENT and canceled.requested_by == BOB
    assert "CANCEL request cancel-2 is still waiting for D1's answer" in await refused(
        decide(fast, bob, rid, asked.change_id)
    )
    assert fast.d1.changes[card] == [{"type": "CANCEL"}]
    await handle.terminate("test done")
