"""How a card order reaches D1: its own submission call, or its line in a D1 batch call
(workflows/d1_batch.py). Either answers D1's operation id, or how the order ends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

from activities import contract as acts
from contracts import card_order as api
from contracts.d1_batch import SubmissionResult
from workflows.follow_up import call_d1
from workflows.outcomes import Ending, call_failure, gave_up, refused_by_d1, submission_ending


async def submit(ref: api.OrderRef, submission: api.D1Submission, timing: api.OrderTiming) -> str | Ending:
    """Post the order to D1 (retried until ``submit_give_up_after``)."""
    try:
        result = await call_d1(
            acts.SUBMIT_ORDER,
            acts.SubmitInput(
                issuer_id=ref.issuer_id,
                card_id=ref.card_id,
                issuer_request_id=ref.issuer_request_id,
                body=submission.body,
            ),
            acts.SubmitResult,
            start_to_close=timedelta(seconds=60),
            give_up_after=timing.submit_give_up_after,
            summary="Submit order to D1",
        )
    except ActivityError as err:
        return submission_ending(call_failure(err))
    return result.operation_id


async def await_batch(
    batch: api.BatchMembership, answer: Callable[[], SubmissionResult | None], timing: api.OrderTiming
) -> str | Ending:
    """Wait for ``answer()``: the batch workflow's signal with D1's answer for this card."""
    try:
        await workflow.wait_condition(lambda: answer() is not None, timeout=timing.submit_give_up_after)
    except TimeoutError:
        return gave_up(f"no answer from the D1 batch {batch.batch_workflow_id}")
    result = answer()
    assert result is not None
    if result.operation_id is not None:
        return result.operation_id
    return refused_by_d1(result.refusal) if result.refusal is not None else gave_up(result.gave_up or "")
