"""``CardOrderWorkflow``: one physical card, from order to delivery, durable over days.

submit → wait for D1 notifications (signals from the receiver), reconciling with D1's
status endpoint when D1 goes quiet, until the card is delivered, returned, rejected,
canceled or failed, or shipment tracking stays quiet long enough after shipping. This
module only sequences activities, timers and handlers; the decisions live in the pure
modules it imports. It never sees clear card data (contracts/card_order.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import contract as acts
    from contracts import card_order as api
    from contracts import d1_batch
    from contracts.d1_batch import SubmissionResult
    from d1.notifications import OperationNotification
    from observability import names as metric_names
    from workflows import order_state
    from workflows.change_rules import change_problem
    from workflows.details_line import details_line
    from workflows.events_out import EventsOut
    from workflows.follow_up import Follower, call_d1
    from workflows.inputs import read_input
    from workflows.order_state import Applied
    from workflows.outcomes import Ending, call_failure, gave_up, refused_by_d1, submission_ending


def _change_update(kind: str, description: str) -> Any:
    """The update (and its validator) for one pull & change ``kind``; ``self`` stays unannotated:
    the SDK leaves out of the update's argument types only a first parameter without a type."""

    async def handler(self, req: api.ChangeRequest | None = None) -> api.ChangeRecord:  # type: ignore[no-untyped-def]
        return await self._pull_and_change(kind, req)  # type: ignore[no-any-return]

    def validator(self, req: api.ChangeRequest | None = None) -> None:  # type: ignore[no-untyped-def]
        self._reject_change(kind, req)

    update = workflow.update(name=api.CHANGE_UPDATES[kind], description=description)(handler)
    update.validator(validator)
    return update


@workflow.defn(name=api.WORKFLOW_TYPE)
class CardOrderWorkflow:
    @workflow.init
    def __init__(self, raw: RawValue) -> None:
        # Read here, not by the SDK: a bad input ends the workflow instead of failing every
        # workflow task (workflows/inputs.py).
        self._raw_input = read_input(raw, api.CardOrderInput)
        # A stand-in while ``run`` ends a refused input (not validated: it has no submission).
        inp = self._raw_input.value or api.CardOrderInput.model_construct(
            ref=api.OrderRef(issuer_id="-", card_id="-", issuer_request_id="-")
        )
        self._ref = inp.ref
        self._timing = inp.timing
        self._state: api.OrderState = inp.state.model_copy(deep=True) if inp.state else api.OrderState()
        self._follow = Follower(
            issuer_id=inp.ref.issuer_id,
            state=self._state,
            timing=inp.timing,
            produced_is_final=inp.ref.shipment_type is None,
            status_input=acts.StatusInput(
                issuer_id=inp.ref.issuer_id, card_id=inp.ref.card_id, issuer_request_id=inp.ref.issuer_request_id
            ),
            skip_transient_upserts=True,
        )
        self._batch_result: SubmissionResult | None = None
        self._events = EventsOut.for_order(workflow.info().workflow_id, inp.ref, inp.timing)

    @workflow.signal(name=api.NOTIFICATION_SIGNAL)
    def on_notification(self, op: OperationNotification | None = None) -> None:
        if op is None:
            self._follow.refuse(api.NOTIFICATION_SIGNAL)
            return
        if self._state.finished:
            self._follow.count(metric_names.NOTIFICATIONS_LATE, seen_by="workflow")
        if self._follow.apply(op, source="notification") == Applied.DUPLICATE:
            self._follow.count(metric_names.NOTIFICATIONS_DUPLICATED)

    @workflow.signal(name=api.RECONCILE_SIGNAL)
    def reconcile_now(self, req: api.ReconcileRequest | None = None) -> None:
        """Ask D1's status endpoint at once instead of at the end of the silence window
        (an operator re-driving stuck orders after an outage of notifications)."""
        if req is None:
            self._follow.refuse(api.RECONCILE_SIGNAL)
            return
        self._follow.reconcile_requested = True

    @workflow.signal(name=d1_batch.RESULT_SIGNAL)
    def on_batch_result(self, result: SubmissionResult | None = None) -> None:
        """D1's answer for this card in a batch call (contracts/d1_batch.py); the first wins."""
        if result is None:
            self._follow.refuse(d1_batch.RESULT_SIGNAL)
            return
        if self._batch_result is None:
            self._batch_result = result

    @workflow.query(name=api.VIEW_QUERY)
    def view(self) -> api.OrderView:
        return api.OrderView(workflow_id=workflow.info().workflow_id, ref=self._ref, state=self._state)

    # Pull & change. The validators refuse at once, without calling D1, what cannot work
    # (workflows/change_rules.py). The handler calls D1 and returns once D1 took the
    # request; the personalization center's answer (UPDATE_ORDER) then settles the change
    # in the view and the timeline.

    cancel = _change_update("CANCEL", "Cancel the order and destroy the card (before shipment)")
    accelerate = _change_update("ACCELERATE", "Produce as soon as possible, ship express")
    redirect = _change_update("REDIRECT", "Ship to a new delivery address")
    accelerate_and_redirect = _change_update("ACCELERATE_AND_REDIRECT", "Accelerate and ship to a new address")

    @workflow.run
    async def run(self, raw: RawValue) -> api.OrderView:
        inp = self._raw_input.check(api.CardOrderInput)
        self._follow.start_clocks(inp.last_progress_at, inp.shipment_changed_at)
        self._publish()
        if inp.state is None:  # the first run, not a continue-as-new
            self._follow.count(metric_names.ORDERS_STARTED)
        if not self._state.submitted:
            # The input's model guarantees one of them on a first run (contracts/card_order.py).
            if inp.submission is not None:
                await self._submit(inp.submission)
            elif inp.batch is not None:
                await self._await_batch(inp.batch)
            self._publish()

        await self._follow.follow_until_finished(
            lambda: api.CardOrderInput(
                ref=self._ref,
                timing=self._timing,
                state=self._state,
                last_progress_at=self._follow.last_progress_at,
                shipment_changed_at=self._follow.shipment_changed_at,
            ),
            self._publish,
        )
        if self._state.outcome is not None:
            self._follow.count(metric_names.ORDERS_FINISHED, outcome=self._state.outcome.value)
        await self._follow.close()
        self._publish()
        await self._events.drained()
        return self.view()

    async def _submit(self, submission: api.D1Submission) -> None:
        ref = self._ref
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
                give_up_after=self._timing.submit_give_up_after,
                summary="Submit order to D1",
            )
        except ActivityError as err:
            self._end(submission_ending(call_failure(err)))
            return
        self._submitted(result.operation_id)

    async def _await_batch(self, batch: api.BatchMembership) -> None:
        try:
            await workflow.wait_condition(
                lambda: self._batch_result is not None, timeout=self._timing.submit_give_up_after
            )
        except TimeoutError:
            self._end(gave_up(f"no answer from the D1 batch {batch.batch_workflow_id}"))
            return
        result = self._batch_result
        assert result is not None
        if result.operation_id is not None:
            self._submitted(result.operation_id)
            return
        self._end(refused_by_d1(result.refusal) if result.refusal is not None else gave_up(result.gave_up or ""))

    def _submitted(self, operation_id: str) -> None:
        self._state.submitted = True
        if operation_id and self._state.operation_id is None:
            self._state.operation_id = operation_id

    def _end(self, ending: Ending) -> None:
        order_state.end(self._state, *ending)
        self._state.submitted = True

    def _reject_change(self, kind: str, req: api.ChangeRequest | None) -> None:
        if req is None:
            self._follow.refuse(api.CHANGE_UPDATES[kind])
            raise ApplicationError(
                f"{kind} needs its ChangeRequest argument", type=api.CHANGE_REJECTED, non_retryable=True
            )
        problem = change_problem(self._state, self._ref, kind, has_address=req.new_delivery_address is not None)
        if problem is not None:
            raise ApplicationError(problem, type=api.CHANGE_REJECTED, non_retryable=True)

    async def _pull_and_change(self, kind: str, req: api.ChangeRequest | None) -> api.ChangeRecord:
        # Checked again: another update may have been accepted since this one was validated.
        self._reject_change(kind, req)
        assert req is not None
        st = self._state
        address = req.new_delivery_address
        record = api.ChangeRecord(
            change_id=f"{kind.lower()}-{len(st.changes) + 1}",
            type=kind,
            requested_at=workflow.now().isoformat(),
            note=req.note,
            redirected_to=f"{address.city}, {address.countryCode}" if address is not None else None,
        )
        st.changes.append(record)
        self._follow.changed = True
        body: dict[str, object] = {"type": kind}
        if address is not None:
            body["newDeliveryAddress"] = address.model_dump(mode="json", exclude_none=True)
        try:
            result = await call_d1(
                acts.REQUEST_PULL_AND_CHANGE,
                acts.PullAndChangeInput(
                    issuer_id=self._ref.issuer_id,
                    card_id=self._ref.card_id,
                    issuer_request_id=self._ref.issuer_request_id,
                    change_id=record.change_id,
                    body=body,
                ),
                acts.PullAndChangeResult,
                start_to_close=timedelta(seconds=30),
                give_up_after=self._timing.change_give_up_after,
                summary=f"Pull & change {kind}",
            )
        except ActivityError as err:
            info = call_failure(err).refusal
            record.status = api.ChangeStatus.FAILED
            record.reason = (
                f"D1 refused the request: {info.get('errorCode') or ''} {info.get('error') or ''}".strip()
                if info is not None
                else "D1 could not be reached in time"
            )
            self._follow.changed = True
            raise ApplicationError(
                f"{kind} failed: {record.reason}", type=api.CHANGE_FAILED, non_retryable=True
            ) from None
        if record.d1_operation_id is None:
            record.d1_operation_id = result.operation_id
        if record.status == api.ChangeStatus.REQUESTED:  # the outcome may already have arrived
            record.status = api.ChangeStatus.SENT
        self._follow.changed = True
        return record

    def _publish(self) -> None:
        self._follow.publish(details_line(self._state))
        self._events.observe(self._state)
