"""``CardOrderWorkflow``: one physical card, from order to delivery, durable over days.

encrypt → submit → wait for D1 notifications (signals from the receiver), reconciling
with D1's status endpoint when D1 goes quiet, until the card is delivered, returned,
rejected, canceled or failed, or shipment tracking stays quiet long enough after
shipping. All decisions about updates live in :mod:`workflows.order_state`; this module
only sequences activities, timers and handlers.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.card_order import CardOrderActivities
    from d1.notifications import OperationNotification
    from d1.order import REDIRECTING_TYPES, CardOrder
    from observability import names as metric_names
    from workflows import search_attributes as sa
    from workflows.messages import (
        CHANGE_FAILED,
        CHANGE_REJECTED,
        D1_REJECTED,
        CardOrderInput,
        ChangeRequest,
        EncryptInput,
        OrderView,
        PullAndChangeInput,
        StatusInput,
        SubmitInput,
        SubmitResult,
    )
    from workflows.order_state import Applied, ChangeRecord, ChangeStatus, OrderError, OrderState, Outcome

NOTIFICATION_SIGNAL = "d1_notification"
VIEW_QUERY = "order_view"
# Operators re-drive reconciliation (``python -m starter reconcile``): ask D1 now.
RECONCILE_SIGNAL = "reconcile_now"
# Pull & change (before shipment): workflow updates, one per D1 change type.
CANCEL_UPDATE = "cancel"
ACCELERATE_UPDATE = "accelerate"
REDIRECT_UPDATE = "redirect"
ACCELERATE_AND_REDIRECT_UPDATE = "accelerate_and_redirect"

# Encrypt and submit in one activity (fewer events, no JWE in history). Orders started
# before this change replay the two-activity path (tests/histories/).
ONE_STEP_SUBMIT_PATCH = "one-step-submit"
# A worker that dies in the middle of a D1 call is noticed this fast (activities heartbeat).
HEARTBEAT_TIMEOUT = timedelta(seconds=5)
D1_CALL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)
RECONCILE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)


_STATUS_WORDS = {
    "CARD_PROD_REQUESTED": "production requested",
    "DATA_PREPARED": "card data prepared",
    "CARD_PROD_READY": "ready for production",
    "CARD_PROD_ON_HOLD": "production on hold",
    "CARD_PROD_ONGOING": "in production",
    "CARD_PROD_DONE": "produced, waiting for the carrier",
    "CARD_SHIPPED": "shipped",
    "DATA_EXCEPTION": "stopped: D1 could not use the card data",
    "CARD_PROD_EXCEPTION": "stopped: production failed",
    "CARD_PROD_CANCELED": "production canceled",
    "CARD_RETURNED": "returned to the issuer",
}
_SOURCE_WORDS = {"notification": "a D1 notification", "reconciliation": "a status check with D1"}


def _in_words(status: str | None) -> str:
    """The UI's details line speaks to operators: a D1 status in words (unknown ones as is)."""
    return _STATUS_WORDS.get(status or "", status or "unknown")


def _readable_time(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _due_date_value(due: str | None) -> datetime | None:
    if not due:
        return None
    try:
        parsed = datetime.fromisoformat(due)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@workflow.defn(name="CardOrderWorkflow")
class CardOrderWorkflow:
    @workflow.init
    def __init__(self, inp: CardOrderInput) -> None:
        self._ref = inp.ref
        self._timing = inp.timing
        self._state: OrderState = inp.state.model_copy(deep=True) if inp.state else OrderState()
        self._delivered = frozenset(inp.timing.delivered_shipment_statuses)
        self._returned = frozenset(inp.timing.returned_shipment_statuses)
        self._changed = False
        self._last_progress_at: datetime | None = None
        self._shipment_changed_at: datetime | None = None
        self._published: dict[str, object] = {}
        self._reconcile_requested = False
        self._wake: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- handlers

    @workflow.signal(name=NOTIFICATION_SIGNAL)
    def on_notification(self, op: OperationNotification) -> None:
        if self._state.finished:
            self._count(metric_names.NOTIFICATIONS_LATE, seen_by="workflow")
        if self._apply(op, source="notification") is Applied.DUPLICATE:
            self._count(metric_names.NOTIFICATIONS_DUPLICATED)

    @workflow.signal(name=RECONCILE_SIGNAL)
    def reconcile_now(self) -> None:
        """Ask D1's status endpoint at once instead of at the end of the silence window
        (an operator re-driving stuck orders after an outage of notifications)."""
        self._reconcile_requested = True

    @workflow.query(name=VIEW_QUERY)
    def view(self) -> OrderView:
        return OrderView(workflow_id=workflow.info().workflow_id, ref=self._ref, state=self._state)

    # Pull & change. The validators refuse at once, without calling D1, what cannot work:
    # a finished or shipped order, an order D1 has not accepted yet, a change still waiting
    # for D1's answer, a redirect without address (or of a BULK or unshipped card). The
    # handler calls D1 and returns once D1 took the request; the personalization center's
    # answer (UPDATE_ORDER) then settles the change in the view and the timeline.

    @workflow.update(name=CANCEL_UPDATE, description="Cancel the order and destroy the card (before shipment)")
    async def cancel(self, req: ChangeRequest | None = None) -> ChangeRecord:
        return await self._pull_and_change("CANCEL", req or ChangeRequest())

    @cancel.validator
    def _validate_cancel(self, req: ChangeRequest | None = None) -> None:
        self._reject_change("CANCEL", req or ChangeRequest())

    @workflow.update(name=ACCELERATE_UPDATE, description="Produce as soon as possible, ship express")
    async def accelerate(self, req: ChangeRequest | None = None) -> ChangeRecord:
        return await self._pull_and_change("ACCELERATE", req or ChangeRequest())

    @accelerate.validator
    def _validate_accelerate(self, req: ChangeRequest | None = None) -> None:
        self._reject_change("ACCELERATE", req or ChangeRequest())

    @workflow.update(name=REDIRECT_UPDATE, description="Ship to a new delivery address")
    async def redirect(self, req: ChangeRequest | None = None) -> ChangeRecord:
        return await self._pull_and_change("REDIRECT", req or ChangeRequest())

    @redirect.validator
    def _validate_redirect(self, req: ChangeRequest | None = None) -> None:
        self._reject_change("REDIRECT", req or ChangeRequest())

    @workflow.update(name=ACCELERATE_AND_REDIRECT_UPDATE, description="Accelerate and ship to a new address")
    async def accelerate_and_redirect(self, req: ChangeRequest | None = None) -> ChangeRecord:
        return await self._pull_and_change("ACCELERATE_AND_REDIRECT", req or ChangeRequest())

    @accelerate_and_redirect.validator
    def _validate_accelerate_and_redirect(self, req: ChangeRequest | None = None) -> None:
        self._reject_change("ACCELERATE_AND_REDIRECT", req or ChangeRequest())

    # --------------------------------------------------------------------- run

    @workflow.run
    async def run(self, inp: CardOrderInput) -> OrderView:
        now = workflow.now()
        self._last_progress_at = inp.last_progress_at or now
        if self._state.shipped:
            self._shipment_changed_at = inp.shipment_changed_at or now
        self._publish()
        if inp.state is None:  # the first run, not a continue-as-new
            self._count(metric_names.ORDERS_STARTED)
        if not self._state.submitted:
            if inp.order is None:
                raise ApplicationError("first run of an order needs the order", non_retryable=True)
            await self._submit(inp.order)
            self._publish()

        while not self._state.finished:
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    CardOrderInput(
                        ref=self._ref,
                        timing=self._timing,
                        order=None,
                        state=self._state,
                        last_progress_at=self._last_progress_at,
                        shipment_changed_at=self._shipment_changed_at,
                    )
                )
            await self._wait_for_news()
            self._publish()

        if self._state.outcome is not None:
            self._count(metric_names.ORDERS_FINISHED, outcome=self._state.outcome.value)
        # Stragglers (a duplicate of the last step, a late carrier scan) still join the timeline.
        if self._timing.close_grace > timedelta(0):
            await workflow.sleep(self._timing.close_grace)
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._publish()
        return self.view()

    # ----------------------------------------------------------------- helpers

    def _apply(self, op: OperationNotification, *, source: str) -> Applied:
        was_shipped, old_ship = self._state.shipped, self._state.shipment
        result = self._state.apply(
            op,
            source=source,
            delivered_statuses=self._delivered,
            returned_statuses=self._returned,
            produced_is_final=self._ref.shipment_type is None,
        )
        if result in (Applied.ADVANCED, Applied.RECORDED):
            now = workflow.now()
            self._last_progress_at = now
            if self._state.shipped and (not was_shipped or self._state.shipment != old_ship):
                self._shipment_changed_at = now
            self._changed = True
        return result

    async def _submit(self, order: CardOrder) -> None:
        give_up = self._timing.submit_give_up_after
        try:
            if workflow.patched(ONE_STEP_SUBMIT_PATCH):
                result = await workflow.execute_activity_method(
                    CardOrderActivities.encrypt_and_submit,
                    EncryptInput(order=order),
                    start_to_close_timeout=timedelta(seconds=60),
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    schedule_to_close_timeout=give_up,
                    retry_policy=D1_CALL_RETRY,
                    summary="Encrypt card data and submit order to D1",
                )
            else:  # orders started before the patch: two activities, JWE in history
                result = await self._submit_in_two_steps(order, give_up)
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == D1_REJECTED:
                info = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
                self._state.errors.append(
                    OrderError(
                        source="submit",
                        http_status=info.get("httpStatus"),
                        error_code=info.get("errorCode"),
                        error=info.get("error"),
                    )
                )
                self._state.end(Outcome.REJECTED, info.get("errorCode") or info.get("error"))
            else:
                self._state.errors.append(OrderError(source="submit", error=str(cause or err)))
                self._state.end(Outcome.SUBMIT_FAILED, "D1 did not accept the order within the give-up window")
            self._state.submitted = True
            return
        self._state.submitted = True
        if result.operation_id and self._state.operation_id is None:
            self._state.operation_id = result.operation_id

    async def _submit_in_two_steps(self, order: CardOrder, give_up: timedelta) -> SubmitResult:
        """The original submission (before ONE_STEP_SUBMIT_PATCH), kept for replay."""
        jwe = await workflow.execute_activity_method(
            CardOrderActivities.encrypt_card_data,
            EncryptInput(order=order),
            start_to_close_timeout=timedelta(seconds=10),
            schedule_to_close_timeout=give_up,
            retry_policy=D1_CALL_RETRY,
            summary="Encrypt card data for D1 (JWE)",
        )
        return await workflow.execute_activity_method(
            CardOrderActivities.submit_order,
            SubmitInput(
                issuer_id=self._ref.issuer_id,
                card_id=self._ref.card_id,
                issuer_request_id=self._ref.issuer_request_id,
                body=order.d1_body(jwe),
            ),
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            schedule_to_close_timeout=give_up,
            retry_policy=D1_CALL_RETRY,
            summary="Submit order to D1",
        )

    def _deadlines(self) -> tuple[datetime, datetime | None]:
        """When to act without news: reconcile after silence, finish after carrier quiet."""
        assert self._last_progress_at is not None
        reconcile_at = self._last_progress_at + self._timing.reconcile_after
        quiet_at = (
            self._shipment_changed_at + self._timing.quiet_after_shipped
            if self._state.shipped and self._shipment_changed_at is not None
            else None
        )
        return (min(reconcile_at, quiet_at) if quiet_at else reconcile_at), quiet_at

    async def _wait_for_news(self) -> None:
        """Wait for an update, an operator's request or the deadline.

        One durable timer covers a whole silence window: news does not cancel it (that
        would cost two history events per update); when it fires early because progress
        moved the deadline, the next round arms a timer for the remainder only."""
        deadline, _ = self._deadlines()
        if self._wake is None or self._wake.done():
            delay = max(deadline - workflow.now(), timedelta(seconds=1))
            self._wake = asyncio.create_task(workflow.sleep(delay))
        wake = self._wake
        self._changed = False
        await workflow.wait_condition(lambda: self._changed or self._reconcile_requested or wake.done())
        if self._reconcile_requested:
            self._reconcile_requested = False
            await self._reconcile()
            return
        if not wake.done():
            return  # news; the timer keeps running
        now = workflow.now()
        deadline, quiet_at = self._deadlines()
        if now < deadline:
            return  # progress moved the deadline: re-armed for the remainder next round
        if quiet_at is not None and now >= quiet_at:
            self._state.end(Outcome.SHIPPED, "carrier tracking quiet after shipping")
            return
        await self._reconcile()

    async def _reconcile(self) -> None:
        self._state.reconciliations += 1
        try:
            latest = await workflow.execute_activity_method(
                CardOrderActivities.fetch_production_status,
                StatusInput(
                    issuer_id=self._ref.issuer_id,
                    card_id=self._ref.card_id,
                    issuer_request_id=self._ref.issuer_request_id,
                ),
                start_to_close_timeout=timedelta(seconds=30),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RECONCILE_RETRY,
                summary="Reconcile status with D1",
            )
        except ActivityError as err:
            workflow.logger.warning("reconciliation failed; will try again later: %s", err.cause or err)
            latest = None
        if latest is not None:
            self._apply(latest, source="reconciliation")
        # Whether or not D1 said something new, the next check is one window away.
        self._last_progress_at = workflow.now()

    # ------------------------------------------------------------ pull & change

    def _change_problem(self, kind: str, req: ChangeRequest) -> str | None:
        """Why this change cannot be asked now (None: it can). Pure: validators call it."""
        st = self._state
        if st.finished:
            assert st.outcome is not None
            return f"the order is already finished ({st.outcome.value}); pull & change only applies to open orders"
        if st.shipped:
            return (
                f"the card is already shipped ({st.production_status}); pull & change only applies before shipment"
            )
        if not st.submitted:
            return "D1 has not accepted the order yet; try again in a moment"
        if st.cancel_accepted:
            return "the order is being canceled"
        pending = st.pending_change
        if pending is not None:
            return f"the {pending.type} request {pending.change_id} is still waiting for D1's answer"
        redirecting = kind in REDIRECTING_TYPES
        if redirecting and req.new_delivery_address is None:
            return f"{kind} needs new_delivery_address"
        if not redirecting and req.new_delivery_address is not None:
            return f"{kind} takes no new_delivery_address (use REDIRECT or ACCELERATE_AND_REDIRECT)"
        if kind != "CANCEL" and self._ref.shipment_type is None:
            return f"{kind} only applies to shipped cards; this order is not shipped"
        if redirecting and self._ref.shipment_type == "BULK":
            return "a card in a BULK shipment cannot be redirected on its own"
        return None

    def _reject_change(self, kind: str, req: ChangeRequest) -> None:
        problem = self._change_problem(kind, req)
        if problem is not None:
            raise ApplicationError(problem, type=CHANGE_REJECTED, non_retryable=True)

    async def _pull_and_change(self, kind: str, req: ChangeRequest) -> ChangeRecord:
        # Checked again: another update may have been accepted since this one was validated.
        self._reject_change(kind, req)
        st = self._state
        address = req.new_delivery_address
        record = ChangeRecord(
            change_id=f"{kind.lower()}-{len(st.changes) + 1}",
            type=kind,
            requested_at=workflow.now().isoformat(),
            note=req.note,
            redirected_to=f"{address.city}, {address.countryCode}" if address is not None else None,
        )
        st.changes.append(record)
        self._changed = True
        body: dict[str, object] = {"type": kind}
        if address is not None:
            body["newDeliveryAddress"] = address.model_dump(mode="json", exclude_none=True)
        try:
            result = await workflow.execute_activity_method(
                CardOrderActivities.request_pull_and_change,
                PullAndChangeInput(
                    issuer_id=self._ref.issuer_id,
                    card_id=self._ref.card_id,
                    issuer_request_id=self._ref.issuer_request_id,
                    change_id=record.change_id,
                    body=body,
                ),
                start_to_close_timeout=timedelta(seconds=30),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                schedule_to_close_timeout=self._timing.change_give_up_after,
                retry_policy=D1_CALL_RETRY,
                summary=f"Pull & change {kind}",
            )
        except ActivityError as err:
            cause = err.cause
            info = (
                cause.details[0]
                if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict)
                else {}
            )
            rejected = isinstance(cause, ApplicationError) and cause.type == D1_REJECTED
            record.status = ChangeStatus.FAILED
            record.reason = (
                f"D1 refused the request: {info.get('errorCode') or ''} {info.get('error') or ''}".strip()
                if rejected
                else "D1 could not be reached in time"
            )
            self._changed = True
            raise ApplicationError(f"{kind} failed: {record.reason}", type=CHANGE_FAILED, non_retryable=True) from None
        if record.d1_operation_id is None:
            record.d1_operation_id = result.operation_id
        if record.status == ChangeStatus.REQUESTED:  # the outcome may already have arrived
            record.status = ChangeStatus.SENT
        self._changed = True
        return record

    def _publish(self) -> None:
        """Upsert search attributes that changed and refresh the UI's details line."""
        st = self._state
        wanted: dict[str, object] = {
            sa.PRODUCTION_STATUS.name: st.production_status,
            sa.SHIPMENT_STATUS.name: st.shipment.status if st.shipment else None,
            sa.TRACKING_NUMBER.name: st.shipment.trackingNumber if st.shipment else None,
            sa.ORDER_OUTCOME.name: st.outcome.value if st.outcome else None,
            sa.DUE_DATE.name: _due_date_value(st.due_date),
        }
        keys = {
            sa.PRODUCTION_STATUS.name: sa.PRODUCTION_STATUS,
            sa.SHIPMENT_STATUS.name: sa.SHIPMENT_STATUS,
            sa.TRACKING_NUMBER.name: sa.TRACKING_NUMBER,
            sa.ORDER_OUTCOME.name: sa.ORDER_OUTCOME,
            sa.DUE_DATE.name: sa.DUE_DATE,
        }
        updates = []
        for name, value in wanted.items():
            if value is not None and self._published.get(name) != value:
                updates.append(keys[name].value_set(value))  # type: ignore[attr-defined]
                self._published[name] = value
        if updates:
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(self._details_line())

    def _count(self, name: str, **labels: str) -> None:
        """A product counter (observability/names.py); replay-safe: nothing is recorded on replay."""
        workflow.metric_meter().create_counter(name).add(1, {"issuer_id": self._ref.issuer_id, **labels})

    def _details_line(self) -> str:
        st = self._state
        production = (
            f"{_in_words(st.production_status)} ({st.production_status})"
            if st.production_status
            else "not yet acknowledged by D1"
        )
        parts = [f"**Production:** {production}"]
        if st.due_date:
            parts.append(f"**Due:** {st.due_date}")
        if st.shipment and st.shipment.status:
            ship = st.shipment
            parts.append(f"**Shipment:** {ship.status} ({ship.carrier or 'carrier'} {ship.trackingNumber or ''})")
        if st.outcome:
            parts.append(f"**Outcome:** {st.outcome.value}" + (f" ({st.outcome_reason})" if st.outcome_reason else ""))
        if st.timeline:
            last = st.timeline[-1]
            step = _in_words(last.production_status) if last.production_status else last.operation
            if last.shipment_status:
                step += f", parcel {last.shipment_status}"
            source = _SOURCE_WORDS.get(last.source, last.source)
            parts.append(
                f"**Last update:** {step}, from {source}, {_readable_time(last.d1_time)} "
                f"({len(st.timeline)} update{'s' if len(st.timeline) != 1 else ''} so far)"
            )
        if st.unknown_statuses:
            parts.append(f"**Unknown statuses seen:** {', '.join(st.unknown_statuses)}")
        if st.changes:
            last_change = st.changes[-1]
            parts.append(
                f"**Pull & change:** {last_change.type} {last_change.status.value}"
                + (f" ({last_change.reason})" if last_change.reason else "")
            )
        return "  \n".join(parts)
