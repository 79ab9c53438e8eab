"""The order's ``check_activation`` update (workflows/activation.py) on the time-skipping
server: the order decides an activation's flag from its own history, so a Delivered
notification signalled just before counts, and it records a refusal itself, once."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from contracts import activation as activation_api
from contracts import search_attributes as sa
from contracts.activation import ActivationCheck, ActivationFlag
from contracts.messages import MESSAGE_REFUSED
from tests.support.senders import as_role
from tests.workflows.conftest import FastEnv
from tests.workflows.test_card_order_workflow import notify, ops, start, until

ISSUER_ID = "TESTISS001"


async def check(
    fast: FastEnv, handle: WorkflowHandle[Any, Any], card: str, *, refuse: bool = False, sender: str = "receiver"
) -> str:
    """The flag the order answers (its failure's type for a flagged one), as the receiver reads it."""
    sent = ActivationCheck(
        issuer_id=ISSUER_ID, card_id=card, activated_at="2026-12-07T12:00:00.000+00:00", refuse_before_delivery=refuse
    )
    by = as_role(fast.client, sender).get_workflow_handle(handle.id)
    try:
        answer: str = await by.execute_update(activation_api.CHECK_UPDATE, sent, result_type=str)
    except WorkflowUpdateFailedError as err:
        assert isinstance(err.cause, ApplicationError)
        return err.cause.type or ""
    return answer


async def test_an_activation_right_behind_the_delivered_notification_is_not_flagged(fast: FastEnv) -> None:
    handle, card, rid = await start(fast, "act-b2b")
    # Signalled, not yet processed when the update arrives: the order's history has it.
    await notify(handle, ops(card, rid))
    assert await check(fast, handle, card) == ActivationFlag.ACTIVATED
    view = await until(handle, lambda v: v.state.outcome is not None)
    assert view.state.activation is None  # recorded once the bank confirmed (signal card_activated)
    await handle.terminate("test done")


async def test_a_refusal_is_recorded_by_the_order_once_and_an_activation_once_delivered_is_not(fast: FastEnv) -> None:
    handle, card, rid = await start(fast, "act-refuse")
    steps = ops(card, rid)
    await notify(handle, steps[:-1])  # shipped, not delivered
    assert await check(fast, handle, card) == ActivationFlag.BEFORE_DELIVERY
    assert await check(fast, handle, card, refuse=True) == ActivationFlag.REFUSED_BEFORE_DELIVERY
    assert await check(fast, handle, card, refuse=True) == ActivationFlag.REFUSED_BEFORE_DELIVERY  # D1 retries
    view = await until(handle, lambda v: v.state.activation is not None)
    assert view.state.activation is not None
    assert view.state.activation.flag == ActivationFlag.REFUSED_BEFORE_DELIVERY
    assert view.state.activation.order_stage and "CARD_SHIPPED" in view.state.activation.order_stage
    assert [e.operation_status for e in view.state.timeline if e.operation == "ACTIVATE"] == ["FAILED"]
    attrs = (await handle.describe()).typed_search_attributes
    assert attrs.get(sa.ACTIVATION) == [ActivationFlag.REFUSED_BEFORE_DELIVERY.value]

    await notify(handle, steps[-1:])
    assert await check(fast, handle, card, refuse=True) == ActivationFlag.ACTIVATED
    await handle.terminate("test done")


@pytest.mark.parametrize("sender", ["edge", "worker"])
async def test_only_the_receiver_asks(fast: FastEnv, sender: str) -> None:
    handle, card, rid = await start(fast, f"act-{sender}")
    await notify(handle, ops(card, rid)[:2])
    assert await check(fast, handle, card, refuse=True, sender=sender) == MESSAGE_REFUSED
    assert await check(fast, handle, "someone-else") == MESSAGE_REFUSED
    assert (await until(handle, lambda v: v.state.updates_applied >= 2)).state.activation is None
    await handle.terminate("test done")
