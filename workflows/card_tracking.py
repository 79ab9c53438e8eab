"""``CardTrackingWorkflow``: D1's tracking hub following a card Thales did not personalize.

Ask D1 to track (one activity), then follow the ``STANDALONE_TRACKING`` notifications the
receiver signals like a card order's (workflows/follow_up.py), until the end rules of
workflows/tracking_rules.py, a refusal or carrier quiet end it. If D1 offers no status
for tracked cards (the program's interface says so), silence is only noted.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities import contract as acts
    from contracts import card_tracking as api
    from contracts import messages
    from contracts.card_order import Notification, OrderState, ReconcileRequest
    from contracts.card_tracking import TrackingInput, TrackingRef, TrackingResult, TrackingView
    from observability import names as metric_names
    from workflows import order_state
    from workflows.details_line import details_line
    from workflows.events_out import EventsOut
    from workflows.follow_up import Follower, call_d1
    from workflows.inputs import read_input, start_roles
    from workflows.messages import CHANGERS, MISSING, NOTIFIERS, ORDER_STARTERS, WRONG_CARD, Gate, Window, stamp
    from workflows.order_state import Applied
    from workflows.outcomes import call_failure, gave_up, refused_by_d1
    from workflows.tracking_rules import tracking_ending


@workflow.defn(name=api.WORKFLOW_TYPE)
class CardTrackingWorkflow:
    @workflow.init
    def __init__(self, raw: RawValue) -> None:
        # A bad input ends the workflow (workflows/inputs.py).
        self._raw_input = read_input(
            raw, TrackingInput, kind=messages.CARD_TRACKING_START, roles=start_roles(ORDER_STARTERS)
        )
        inp = self._raw_input.value or TrackingInput(
            ref=TrackingRef(issuer_id="-", card_id="-", tracking_type="PRODUCTION"), request={}
        )
        self._ref = inp.ref
        self._state: OrderState = inp.state.model_copy(deep=True) if inp.state else OrderState()
        self._gate = Gate(
            issuer_id=inp.ref.issuer_id,
            window=Window(inp.timing.message_max_age, inp.timing.message_max_ahead),
            seen=self._state.seen_messages,
        )
        self._follow = Follower(
            issuer_id=inp.ref.issuer_id,
            state=self._state,
            timing=inp.timing,
            produced_is_final=False,
            status_input=acts.StatusInput(
                issuer_id=inp.ref.issuer_id,
                card_id=inp.ref.card_id,
                issuer_request_id=f"track-{inp.ref.tracking_type.lower()}",
            )
            if inp.reconcile
            else None,
        )
        self._events = EventsOut.for_tracking(workflow.info().workflow_id, inp.ref, inp.timing)

    @workflow.signal(name=api.NOTIFICATION_SIGNAL)
    def on_notification(self, raw: RawValue = MISSING) -> None:
        opened = self._gate.open(api.NOTIFICATION_SIGNAL, raw, Notification, NOTIFIERS, messages.D1_NOTIFICATION)
        if not opened.ok or opened.value is None:
            return
        op = opened.value.operation
        if op.cardId != self._ref.card_id:  # sealed for this tracking, about another card
            self._gate.refuse(api.NOTIFICATION_SIGNAL, WRONG_CARD, opened.sealer)
            return
        self._gate.accept(opened.value)
        if self._follow.apply(op, source="notification") == Applied.DUPLICATE:
            self._follow.count(metric_names.NOTIFICATIONS_DUPLICATED)
        self._settle()

    @workflow.signal(name=api.RECONCILE_SIGNAL)
    def reconcile_now(self, raw: RawValue = MISSING) -> None:
        if self._gate.take(api.RECONCILE_SIGNAL, raw, ReconcileRequest, CHANGERS, messages.RECONCILE):
            self._follow.reconcile_requested = True

    @workflow.query(name=api.VIEW_QUERY)
    def view(self) -> TrackingView:
        return TrackingView(workflow_id=workflow.info().workflow_id, ref=self._ref, state=self._state)

    @workflow.run
    async def run(self, raw: RawValue) -> TrackingResult:
        inp = self._raw_input.check(TrackingInput)
        self._follow.start_clocks(inp.last_progress_at, inp.shipment_changed_at)
        self._publish()
        if not self._state.submitted:
            await self._request(inp)
        await self._follow.follow_until_finished(
            lambda: inp.model_copy(
                update={
                    **stamp(),
                    "state": self._state,
                    "last_progress_at": self._follow.last_progress_at,
                    "shipment_changed_at": self._follow.shipment_changed_at,
                }
            ),
            self._after_news,
        )
        await self._follow.close()
        self._publish()
        await self._events.drained()
        # Small on purpose: the view (timeline) stays readable by query after the end.
        return TrackingResult(
            workflow_id=workflow.info().workflow_id,
            outcome=self._state.outcome,
            outcome_reason=self._state.outcome_reason,
        )

    async def _request(self, inp: TrackingInput) -> None:
        try:
            result = await call_d1(
                acts.REQUEST_TRACKING,
                acts.TrackInput(
                    issuer_id=inp.ref.issuer_id,
                    card_id=inp.ref.card_id,
                    tracking_type=inp.ref.tracking_type,
                    body=inp.request,
                ),
                acts.TrackResult,
                start_to_close=timedelta(seconds=60),
                give_up_after=inp.timing.submit_give_up_after,
                summary=f"Ask D1 to track the card ({inp.ref.tracking_type})",
            )
        except ActivityError as err:
            failure = call_failure(err)
            ending = refused_by_d1(failure.refusal) if failure.refusal is not None else gave_up(failure.text)
            order_state.end(self._state, *ending)
        else:
            if result.operation_id and self._state.operation_id is None:
                self._state.operation_id = result.operation_id
        self._state.submitted = True
        self._publish()

    def _after_news(self) -> None:
        self._settle()
        self._publish()

    def _settle(self) -> None:
        ending = tracking_ending(self._ref.tracking_type, self._state)
        if ending is not None:
            order_state.end(self._state, *ending)

    def _publish(self) -> None:
        line = details_line(self._state)
        line = f"**Tracking:** {self._ref.tracking_type} of card {self._ref.card_id}  \n{line}"
        if self._follow.silences:
            line += (
                f"  \n**Silence:** D1 offers no status for tracked cards; {self._follow.silences} "
                "quiet window(s) passed without news"
            )
        self._follow.publish(line)
        self._events.observe(self._state)
