"""``D1BatchSubmissionWorkflow``: one call to D1's "Order cards" for a batch of card orders.

The card workflows were started first (contracts/d1_batch.py) and wait for their result.
This workflow sends the batch (one activity, retried like a single order until the
give-up window; D1 is idempotent on each card's ids, so a repeated call never produces a
card twice), then tells every card its own answer: D1's operationId, D1's refusal of that
item, or the refusal of the whole request. It completes with counts, no card data.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import contract as acts
    from contracts import d1_batch as api
    from contracts import messages
    from contracts.d1_batch import BatchInput, BatchReport, SubmissionResult
    from workflows.follow_up import call_d1
    from workflows.inputs import read_input
    from workflows.messages import ORDER_STARTERS, stamp
    from workflows.outcomes import call_failure

# A batch of 1,000 takes D1 longer to answer than one card.
BATCH_CALL_TIMEOUT = timedelta(minutes=5)
# Signals to the cards go out in groups, so one workflow task stays small.
SIGNAL_GROUP = 100


def results_for(
    inp: BatchInput,
    batch_id: str,
    answer: acts.BatchSubmitResult | None,
    refusal: dict[str, object] | None,
    gave_up: str | None,
) -> list[SubmissionResult]:
    out = []
    for index in range(len(inp.cards)):
        fields: dict[str, Any]
        if answer is None:
            fields = {"refusal": refusal} if refusal is not None else {"gave_up": gave_up or "D1 unreachable"}
        elif (entry := answer.results[index]).operation_id:
            fields = {"operation_id": entry.operation_id}
        else:
            fields = {
                "refusal": {"httpStatus": answer.http_status, "errorCode": entry.error_code, "error": entry.error}
            }
        out.append(SubmissionResult(**stamp(), batch_workflow_id=batch_id, **fields))
    return out


@workflow.defn(name=api.WORKFLOW_TYPE)
class D1BatchSubmissionWorkflow:
    @workflow.run
    async def run(self, raw: RawValue) -> BatchReport:
        # A bad input ends the workflow instead of failing every task (workflows/inputs.py).
        inp = read_input(raw, BatchInput, kind=messages.D1_BATCH_START, roles=ORDER_STARTERS).check(BatchInput)
        batch_id = workflow.info().workflow_id
        answer: acts.BatchSubmitResult | None = None
        refusal: dict[str, object] | None = None
        gave_up: str | None = None
        try:
            answer = await call_d1(
                acts.SUBMIT_ORDER_BATCH,
                acts.BatchSubmitInput(
                    issuer_id=inp.issuer_id, batch_key=batch_id.rsplit(":", 1)[-1], items=[c.item for c in inp.cards]
                ),
                acts.BatchSubmitResult,
                start_to_close=BATCH_CALL_TIMEOUT,
                give_up_after=inp.give_up_after,
                summary=f"Submit {len(inp.cards)} card(s) to D1 in one call",
            )
        except ActivityError as err:
            failure = call_failure(err)
            refusal = failure.refusal
            if failure.card_data_in_clear:
                refusal = {"errorCode": acts.CARD_DATA_IN_CLEAR, "error": failure.text}
            elif refusal is None:
                gave_up = f"D1 did not accept the batch within the give-up window: {failure.text}"
        results = results_for(inp, batch_id, answer, refusal, gave_up)
        not_signalled: list[str] = []

        async def tell(card_workflow_id: str, result: SubmissionResult) -> None:
            try:
                await workflow.get_external_workflow_handle(card_workflow_id).signal(api.RESULT_SIGNAL, result)
            except ApplicationError:  # the card's workflow has ended (e.g. terminated by an operator)
                not_signalled.append(card_workflow_id)

        pairs = list(zip((c.workflow_id for c in inp.cards), results, strict=True))
        for start in range(0, len(pairs), SIGNAL_GROUP):
            await asyncio.gather(*(tell(w, r) for w, r in pairs[start : start + SIGNAL_GROUP]))
        accepted = sum(1 for r in results if r.operation_id)
        refused = sum(1 for r in results if r.refusal is not None)
        report = BatchReport(
            cards=len(results),
            accepted=accepted,
            refused=refused,
            failed=len(results) - accepted - refused,
            not_signalled=not_signalled,
        )
        workflow.set_current_details(
            f"**D1 batch:** {report.cards} card(s): {report.accepted} accepted, {report.refused} refused by D1, "
            f"{report.failed} not submitted"
            + (f", {len(not_signalled)} card order(s) had ended" if not_signalled else "")
        )
        return report
