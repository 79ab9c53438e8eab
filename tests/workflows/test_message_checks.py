"""The message checks of the workflows (workflows/messages.py, workflows/inputs.py) on the
time-skipping server: each refusal leaves the order unchanged, an unopenable input ends it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError

from contracts import card_order as api
from contracts import d1_batch
from contracts import search_attributes as sa
from contracts.card_order import BatchMembership, ChangeRequest, Notification, OrderResult, Outcome
from contracts.d1_batch import SubmissionResult
from contracts.messages import MESSAGE_REFUSED
from d1.notifications import OperationNotification
from security.codec import generate_keys_file, load_codec
from temporal_client import data_converter
from tests.support.notifications import operation
from tests.support.senders import TEST_OPERATOR, as_role
from tests.workflows.conftest import ISSUER_ID, TASK_QUEUE, FastEnv, final_view, new_ids
from tests.workflows.test_card_order_workflow import notify, ops, start, until, view
from workflows.inputs import INPUT_REFUSED


async def refused_start(client: Client, fast: FastEnv, prefix: str) -> tuple[ApplicationError, Any, str]:
    card, rid = new_ids(prefix)
    handle = await client.start_workflow(
        api.WORKFLOW_TYPE,
        fast.order_input(card, rid),
        id=api.workflow_id(ISSUER_ID, rid),
        task_queue=TASK_QUEUE,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(sa.CARD_ID, card), SearchAttributePair(sa.ISSUER_ID, ISSUER_ID)]
        ),
    )
    with pytest.raises(WorkflowFailureError) as info:
        await fast.client.get_workflow_handle(handle.id).result()  # read with the product's keys
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable
    attrs = (await handle.describe()).typed_search_attributes
    assert attrs.get(sa.ORDER_OUTCOME) == INPUT_REFUSED
    assert attrs.get(sa.CARD_ID) is None and attrs.get(sa.ISSUER_ID) is None
    assert fast.d1.submits[card] == []
    return cause, handle, card


async def test_an_input_sealed_by_an_unknown_key_ends_the_workflow_at_once(fast: FastEnv, tmp_path: Any) -> None:
    """It used to fail the workflow task and retry for ever, Running with the attributes it claimed."""
    stranger = load_codec(generate_keys_file(tmp_path / "stranger.json"), seal_as="edge")
    config = fast.client.config()
    config["data_converter"] = data_converter(stranger)
    cause, _, _ = await refused_start(Client(**config), fast, "unknown-key")
    assert cause.type == "InputRefused" and "unknown_key" in cause.message


async def test_only_the_edge_starts_an_order(fast: FastEnv) -> None:
    cause, _, _ = await refused_start(as_role(fast.client, "receiver"), fast, "receiver-start")
    assert cause.type == "InputRefused" and "wrong_sender" in cause.message


async def test_a_notification_about_another_card_is_refused(fast: FastEnv) -> None:
    handle, card, rid = await start(fast, "other-card")
    other = OperationNotification.model_validate(
        operation("CARD_PROD_CANCELED", card_id="someone-else", request_id=rid)
    )
    await handle.signal(api.NOTIFICATION_SIGNAL, Notification(operation=other))
    await notify(handle, ops(card, rid))
    result = await final_view(handle)
    assert result.state.outcome is Outcome.DELIVERED
    assert "CARD_PROD_CANCELED" not in [e.production_status for e in result.state.timeline]


async def test_a_stale_or_replayed_message_is_refused(fast: FastEnv) -> None:
    handle, card, rid = await start(fast, "stale")
    steps = ops(card, rid)
    old = Notification(operation=steps[0])
    now = await fast.env.get_current_time()
    stale = old.model_copy(update={"issued_at": now - timedelta(hours=2)})
    await as_role(fast.client, "receiver").get_workflow_handle(handle.id).signal(api.NOTIFICATION_SIGNAL, stale)
    first = Notification(operation=steps[0], issued_at=now)
    await handle.signal(api.NOTIFICATION_SIGNAL, first)
    await until(handle, lambda v: v.state.updates_applied == 1)
    await handle.signal(api.NOTIFICATION_SIGNAL, first.model_copy(update={"operation": steps[1]}))  # same id
    await handle.signal(api.NOTIFICATION_SIGNAL, Notification(operation=steps[2]))
    state = (await until(handle, lambda v: v.state.updates_applied == 2)).state
    assert [e.production_status for e in state.timeline] == [steps[0].production_status, steps[2].production_status]
    await handle.terminate("test done")


async def test_a_change_is_refused_from_the_receiver_and_names_the_operator_otherwise(fast: FastEnv) -> None:
    handle, card, rid = await start(fast, "who-asked")
    await notify(handle, ops(card, rid)[:2])
    receiver = as_role(fast.client, "receiver").get_workflow_handle(handle.id)
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await receiver.execute_update(api.CANCEL_UPDATE, ChangeRequest(kind="cancel"), result_type=api.ChangeRecord)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == MESSAGE_REFUSED
    # A redirect's argument is no cancel's.
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(api.CANCEL_UPDATE, ChangeRequest(kind="redirect"), result_type=api.ChangeRecord)
    assert isinstance(info.value.cause, ApplicationError) and info.value.cause.type == MESSAGE_REFUSED
    assert fast.d1.changes[card] == []
    record = await handle.execute_update(api.CANCEL_UPDATE, ChangeRequest(kind="cancel"), result_type=api.ChangeRecord)
    assert record.requested_by == TEST_OPERATOR and fast.d1.changes[card] == [{"type": "CANCEL"}]
    await handle.terminate("test done")


async def test_a_batch_result_of_another_batch_is_refused(fast: FastEnv) -> None:
    card, rid = new_ids("batch-other")
    inp = fast.order_input(card, rid)
    member = inp.model_copy(
        update={"submission": None, "batch": BatchMembership(batch_workflow_id="d1-batch:mine", encryption_kid="k")}
    )
    handle = await fast.client.start_workflow(
        api.WORKFLOW_TYPE, member, id=api.workflow_id(ISSUER_ID, rid), task_queue=TASK_QUEUE, result_type=OrderResult
    )
    worker = as_role(fast.client, "worker").get_workflow_handle(handle.id)
    now = await fast.env.get_current_time()
    await worker.signal(
        d1_batch.RESULT_SIGNAL, SubmissionResult(batch_workflow_id="d1-batch:other", operation_id="x", issued_at=now)
    )
    await worker.signal(
        d1_batch.RESULT_SIGNAL, SubmissionResult(batch_workflow_id="d1-batch:mine", operation_id="mine", issued_at=now)
    )
    state = (await until(handle, lambda v: v.state.submitted)).state
    assert state.operation_id == "mine"
    assert (await view(handle)).state.outcome is None
    await handle.terminate("test done")
