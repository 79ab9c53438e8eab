"""``CardOrderWorkflow``: one physical card, from order to delivery, durable over days.

submit → wait for D1 notifications (signals from the receiver), reconciling with D1's
status endpoint when D1 goes quiet, until the card is delivered, returned, rejected,
canceled or failed, or shipment tracking stays quiet long enough after shipping. This
module only sequences activities, timers and handlers; the decisions live in the pure
modules it imports. It never sees clear card data (contracts/card_order.py).
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from activities import contract as acts
    from contracts import activation as activation_api
    from contracts import card_order as api
    from contracts import d1_batch, messages
    from contracts.d1_batch import SubmissionResult
    from d1.order import Address
    from events import contract as events_api
    from observability import names as metric_names
    from security.sealing import WORKER
    from workflows import approvals, audit, order_state
    from workflows.activation import answer, decide, record_on_order
    from workflows.approval_expiry import expire_unapproved
    from workflows.change_checks import check_change, check_decision
    from workflows.change_requests import send_change
    from workflows.change_updates import change_update
    from workflows.details_line import details_line
    from workflows.events_out import EventsOut
    from workflows.follow_up import Follower
    from workflows.inputs import read_input, start_roles
    from workflows.messages import (
        ACTIVATORS,
        BATCH_RESULT_SENDERS,
        CHANGERS,
        MISSING,
        NOTIFIERS,
        ORDER_STARTERS,
        WRONG_BATCH,
        WRONG_CARD,
        Gate,
        Opened,
        Window,
        refused_update,
        stamp,
    )
    from workflows.order_state import Applied
    from workflows.outcomes import Ending
    from workflows.service_levels import attribute_values as service_attributes
    from workflows.service_levels import observe
    from workflows.submission import await_batch, submit


@workflow.defn(name=api.WORKFLOW_TYPE)
class CardOrderWorkflow:
    @workflow.init
    def __init__(self, raw: RawValue) -> None:
        # Read here, not by the SDK: a bad input ends the workflow instead of failing every
        # workflow task (workflows/inputs.py).
        self._raw_input = read_input(
            raw, api.CardOrderInput, kind=messages.CARD_ORDER_START, roles=start_roles(ORDER_STARTERS)
        )
        # A stand-in while ``run`` ends a refused input (not validated: it has no submission).
        inp = self._raw_input.value or api.CardOrderInput.model_construct(
            ref=api.OrderRef(issuer_id="-", card_id="-", issuer_request_id="-"), timing=api.OrderTiming()
        )
        self._ref = inp.ref
        self._timing = inp.timing
        self._batch_id = inp.batch.batch_workflow_id if inp.batch is not None else None
        self._state: api.OrderState = inp.state.model_copy(deep=True) if inp.state else api.OrderState()
        # Signals and updates are opened and checked here (workflows/messages.py).
        self._gate = Gate(
            issuer_id=inp.ref.issuer_id,
            window=Window(inp.timing.message_max_age, inp.timing.message_max_ahead),
            seen=self._state.seen_messages,
        )
        self._follow = Follower(
            issuer_id=inp.ref.issuer_id,
            state=self._state,
            timing=inp.timing,
            produced_is_final=inp.ref.shipment_type is None,
            status_input=acts.StatusInput(
                issuer_id=inp.ref.issuer_id, card_id=inp.ref.card_id, issuer_request_id=inp.ref.issuer_request_id
            ),
            skip_transient_upserts=True,
            riding_attributes=lambda: service_attributes(self._state, self._ref),
        )
        self._batch_result: SubmissionResult | None = None
        # Four eyes on a new delivery address (workflows/approvals.py), as copied at start.
        self._approvals = inp.approvals
        self._awaiting_addresses: dict[str, Address] = dict(inp.awaiting_addresses)
        self._events = EventsOut.for_order(workflow.info().workflow_id, inp.ref, inp.timing)

    @workflow.signal(name=api.NOTIFICATION_SIGNAL)
    def on_notification(self, raw: RawValue = MISSING) -> None:
        opened = self._gate.open(api.NOTIFICATION_SIGNAL, raw, api.Notification, NOTIFIERS, messages.D1_NOTIFICATION)
        if not opened.ok or opened.value is None:
            return
        op = opened.value.operation
        if op.cardId != self._ref.card_id:  # sealed for this order, about another card
            self._gate.refuse(api.NOTIFICATION_SIGNAL, WRONG_CARD, opened.sealer)
            return
        self._gate.accept(opened.value)
        if self._state.finished:
            self._follow.count(metric_names.NOTIFICATIONS_LATE, seen_by="workflow")
        if self._follow.apply(op, source="notification") == Applied.DUPLICATE:
            self._follow.count(metric_names.NOTIFICATIONS_DUPLICATED)

    @workflow.signal(name=api.RECONCILE_SIGNAL)
    def reconcile_now(self, raw: RawValue = MISSING) -> None:
        """Ask D1's status endpoint at once instead of at the end of the silence window
        (an operator re-driving stuck orders after an outage of notifications)."""
        name = api.RECONCILE_SIGNAL
        opened = self._gate.open(name, raw, api.ReconcileRequest, CHANGERS, messages.RECONCILE)
        if not opened.ok or opened.value is None:
            audit.action(name, who=opened.sealer, result=audit.REFUSED, reason=opened.refusal)
            return
        self._gate.accept(opened.value)
        self._follow.reconcile_requested = True
        audit.action(name, who=opened.sealer, result=audit.ACCEPTED, reason=opened.value.reason)

    @workflow.signal(name=d1_batch.RESULT_SIGNAL)
    def on_batch_result(self, raw: RawValue = MISSING) -> None:
        """D1's answer for this card in a batch call (contracts/d1_batch.py); the first wins."""
        name = d1_batch.RESULT_SIGNAL
        opened = self._gate.open(name, raw, SubmissionResult, BATCH_RESULT_SENDERS, messages.BATCH_RESULT)
        if not opened.ok or opened.value is None:
            return
        if opened.value.batch_workflow_id != self._batch_id:
            self._gate.refuse(name, WRONG_BATCH, opened.sealer)
            return
        self._gate.accept(opened.value)
        if self._batch_result is None:
            self._batch_result = opened.value

    @workflow.signal(name=activation_api.ACTIVATED_SIGNAL)
    def on_activated(self, raw: RawValue = MISSING) -> None:
        """D1's Card Activation for this card (sent by the receiver, receiver/activation.py)."""
        name = activation_api.ACTIVATED_SIGNAL
        opened = self._gate.open(name, raw, activation_api.ActivationRecord, ACTIVATORS, messages.CARD_ACTIVATED)
        if not opened.ok or opened.value is None:
            return
        record = opened.value
        if record.card_id != self._ref.card_id or record.issuer_id != self._ref.issuer_id:
            self._gate.refuse(name, WRONG_CARD, opened.sealer)
            return
        self._gate.accept(record)
        if record_on_order(self._state, record):
            self._follow.changed = True

    @workflow.update(
        name=activation_api.CHECK_UPDATE, description="D1's Card Activation: how it stands against delivery"
    )
    def check_activation(self, raw: RawValue = MISSING) -> str:
        """Asked by the receiver before the bank (receiver/activation.py); a refusal is recorded here."""
        check = self._check_activation(raw)
        self._gate.accept(check)
        delivered = frozenset(self._timing.delivered_shipment_statuses)
        was = self._state.activation
        record = decide(self._state, self._ref, check, delivered)
        if self._state.activation is not was:
            self._follow.changed = True
        return answer(record)

    @check_activation.validator
    def _validate_activation(self, raw: RawValue = MISSING) -> None:
        self._check_activation(raw)

    def _check_activation(self, raw: RawValue) -> activation_api.ActivationCheck:
        name = activation_api.CHECK_UPDATE
        opened = self._gate.open(name, raw, activation_api.ActivationCheck, ACTIVATORS, messages.CARD_ACTIVATION_CHECK)
        check = opened.value
        if opened.refusal is not None or check is None:
            raise refused_update(name, opened.refusal or "invalid")
        if check.card_id != self._ref.card_id or check.issuer_id != self._ref.issuer_id:
            self._gate.refuse(name, WRONG_CARD, opened.sealer)
            raise refused_update(name, WRONG_CARD)
        return check

    @workflow.query(name=api.VIEW_QUERY)
    def view(self) -> api.OrderView:
        return api.OrderView(workflow_id=workflow.info().workflow_id, ref=self._ref, state=self._state)

    @workflow.query(name=events_api.EVENTS_SENT_QUERY)
    def events_sent(self) -> list[events_api.SentEvent]:
        """The events this order handed to its issuer's hub (issue 22: the order shows what was sent)."""
        return list(self._events.sent)

    # Pull & change. The validators refuse at once, without calling D1, what cannot work
    # (workflows/change_rules.py, workflows/change_checks.py). The handler calls D1
    # (workflows/change_requests.py) and returns once D1 took the request; the
    # personalization center's answer (UPDATE_ORDER) then settles the change in the view
    # and the timeline. A new delivery address first waits for a second operator
    # (``approve_change``, workflows/approvals.py) unless the program turned four eyes off
    # (the expiry timer: workflows/approval_expiry.py). Every request, approval and
    # refusal is an audit line (workflows/audit.py).

    cancel = change_update("CANCEL", "Cancel the order and destroy the card (before shipment)")
    accelerate = change_update("ACCELERATE", "Produce as soon as possible, ship express")
    redirect = change_update("REDIRECT", "Ship to a new delivery address")
    accelerate_and_redirect = change_update("ACCELERATE_AND_REDIRECT", "Accelerate and ship to a new address")

    @workflow.update(name=api.APPROVE_CHANGE_UPDATE, description="A second operator approves a new delivery address")
    async def approve_change(self, raw: RawValue = MISSING) -> api.ChangeRecord:
        decision, approver, record = self._check_decision(api.APPROVE_CHANGE_UPDATE, raw)
        self._gate.accept(decision)
        approvals.approve(record, approver, workflow.now())
        audit.action(api.APPROVE_CHANGE_UPDATE, who=approver, result=audit.APPROVED, change_id=record.change_id)
        self._follow.changed = True
        return await self._send_change(record, self._awaiting_addresses.pop(record.change_id, None))

    @approve_change.validator
    def _validate_approval(self, raw: RawValue = MISSING) -> None:
        self._check_decision(api.APPROVE_CHANGE_UPDATE, raw)

    @workflow.update(name=api.REJECT_CHANGE_UPDATE, description="Reject (or withdraw) a change waiting for approval")
    def reject_change(self, raw: RawValue = MISSING) -> api.ChangeRecord:
        decision, who, record = self._check_decision(api.REJECT_CHANGE_UPDATE, raw)
        self._gate.accept(decision)
        approvals.reject(record, who, workflow.now(), decision.note)
        self._awaiting_addresses.pop(record.change_id, None)
        audit.action(api.REJECT_CHANGE_UPDATE, who=who, result=record.status.value, change_id=record.change_id)
        self._follow.changed = True
        return record

    @reject_change.validator
    def _validate_rejection(self, raw: RawValue = MISSING) -> None:
        self._check_decision(api.REJECT_CHANGE_UPDATE, raw)

    @workflow.run
    async def run(self, raw: RawValue) -> api.OrderResult:
        inp = self._raw_input.check(api.CardOrderInput)
        # Started before anything waits: it arms no timer until a change awaits approval.
        expiry = asyncio.create_task(expire_unapproved(self._state, self._awaiting_addresses, self._follow))
        self._follow.start_clocks(inp.last_progress_at, inp.shipment_changed_at)
        self._publish()
        if inp.state is None:  # the first run, not a continue-as-new
            self._follow.count(metric_names.ORDERS_STARTED)
        if not self._state.submitted:
            # The input's model guarantees one of them on a first run (contracts/card_order.py).
            if inp.submission is not None:
                self._settle(await submit(self._ref, inp.submission, self._timing))
            elif inp.batch is not None:
                self._settle(await await_batch(inp.batch, lambda: self._batch_result, self._timing))
            self._publish()

        await self._follow.follow_until_finished(
            lambda: api.CardOrderInput(
                **stamp(),
                ref=self._ref,
                timing=self._timing,
                state=self._state,
                last_progress_at=self._follow.last_progress_at,
                shipment_changed_at=self._follow.shipment_changed_at,
                approvals=self._approvals,
                awaiting_addresses=self._awaiting_addresses,
            ),
            self._publish,
        )
        expiry.cancel()
        for record in approvals.close_awaiting(self._state, workflow.now()):
            self._awaiting_addresses.pop(record.change_id, None)
            audit.action("approval", who=WORKER, result=audit.EXPIRED, change_id=record.change_id, reason=record.reason)
        if self._state.outcome is not None:
            self._follow.count(metric_names.ORDERS_FINISHED, outcome=self._state.outcome.value)
        await self._follow.close()
        self._publish()
        await self._events.drained()
        # Small on purpose: the view (timeline, changes) stays readable by query after the end.
        return api.OrderResult(
            workflow_id=workflow.info().workflow_id,
            outcome=self._state.outcome,
            outcome_reason=self._state.outcome_reason,
        )

    def _settle(self, answer: str | Ending) -> None:
        """D1's operation id (the order was submitted), or how the order ends (workflows/submission.py)."""
        if isinstance(answer, str):
            self._submitted(answer)
        else:
            self._end(answer)

    def _submitted(self, operation_id: str) -> None:
        self._state.submitted = True
        if operation_id and self._state.operation_id is None:
            self._state.operation_id = operation_id

    def _end(self, ending: Ending) -> None:
        order_state.end(self._state, *ending)
        self._state.submitted = True

    def _reject_change(self, kind: str, raw: RawValue) -> Opened[api.ChangeRequest]:
        return check_change(self._gate, self._state, self._ref, kind, raw)

    def _check_decision(self, name: str, raw: RawValue) -> tuple[api.ChangeDecision, str, api.ChangeRecord]:
        return check_decision(self._gate, self._state, self._ref, name, raw)

    async def _pull_and_change(self, kind: str, raw: RawValue) -> api.ChangeRecord:
        # Checked again: another update may have been accepted since this one was validated.
        opened = self._reject_change(kind, raw)
        req = opened.value
        assert req is not None
        self._gate.accept(req)
        st = self._state
        address = req.new_delivery_address
        record = api.ChangeRecord(
            change_id=f"{kind.lower()}-{len(st.changes) + 1}",
            type=kind,
            requested_at=workflow.now().isoformat(),
            requested_by=opened.sealer,
            note=req.note,
            redirected_to=f"{address.city}, {address.countryCode}" if address is not None else None,
        )
        st.changes.append(record)
        self._follow.changed = True
        if approvals.needs_approval(kind, self._approvals):
            approvals.hold(record, now=workflow.now(), policy=self._approvals)
            if address is not None:
                self._awaiting_addresses[record.change_id] = address
            audit.action(
                api.CHANGE_UPDATES[kind],
                who=record.requested_by,
                result=audit.AWAITING_APPROVAL,
                change_id=record.change_id,
            )
            return record
        return await self._send_change(record, address)

    async def _send_change(self, record: api.ChangeRecord, address: Address | None) -> api.ChangeRecord:
        return await send_change(record, address, self._ref, self._timing, self._follow)

    def _publish(self) -> None:
        self._follow.record(observe(self._state, self._ref, workflow.now(), issuer_id=self._ref.issuer_id))
        self._follow.publish(details_line(self._state))
        self._events.observe(self._state)
