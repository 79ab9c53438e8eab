"""``CardOrderWorkflow``: one physical card, from order to delivery, durable over days.

encrypt → submit → wait for D1 notifications (signals from the receiver), reconciling
with D1's status endpoint when D1 goes quiet, until the card is delivered, returned,
rejected, canceled or failed, or shipment tracking stays quiet long enough after
shipping. All decisions about updates live in :mod:`workflows.order_state`; this module
only sequences activities, timers and handlers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.card_order import CardOrderActivities
    from d1.notifications import OperationNotification
    from d1.order import CardOrder
    from workflows import search_attributes as sa
    from workflows.messages import (
        D1_REJECTED,
        CardOrderInput,
        EncryptInput,
        OrderView,
        StatusInput,
        SubmitInput,
    )
    from workflows.order_state import Applied, OrderError, OrderState, Outcome

NOTIFICATION_SIGNAL = "d1_notification"
VIEW_QUERY = "order_view"

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

    # ----------------------------------------------------------------- handlers

    @workflow.signal(name=NOTIFICATION_SIGNAL)
    def on_notification(self, op: OperationNotification) -> None:
        self._apply(op, source="notification")

    @workflow.query(name=VIEW_QUERY)
    def view(self) -> OrderView:
        return OrderView(workflow_id=workflow.info().workflow_id, ref=self._ref, state=self._state)

    # --------------------------------------------------------------------- run

    @workflow.run
    async def run(self, inp: CardOrderInput) -> OrderView:
        now = workflow.now()
        self._last_progress_at = inp.last_progress_at or now
        if self._state.shipped:
            self._shipment_changed_at = inp.shipment_changed_at or now
        self._publish()
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
            op, source=source, delivered_statuses=self._delivered, returned_statuses=self._returned
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
            jwe = await workflow.execute_activity_method(
                CardOrderActivities.encrypt_card_data,
                EncryptInput(order=order),
                start_to_close_timeout=timedelta(seconds=10),
                schedule_to_close_timeout=give_up,
                retry_policy=D1_CALL_RETRY,
                summary="Encrypt card data for D1 (JWE)",
            )
            result = await workflow.execute_activity_method(
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

    async def _wait_for_news(self) -> None:
        now = workflow.now()
        assert self._last_progress_at is not None
        reconcile_at = self._last_progress_at + self._timing.reconcile_after
        quiet_at = (
            self._shipment_changed_at + self._timing.quiet_after_shipped
            if self._state.shipped and self._shipment_changed_at is not None
            else None
        )
        deadline = min(reconcile_at, quiet_at) if quiet_at else reconcile_at
        self._changed = False
        try:
            await workflow.wait_condition(
                lambda: self._changed, timeout=max(deadline - now, timedelta(seconds=1))
            )
            return
        except TimeoutError:
            pass
        if quiet_at is not None and workflow.now() >= quiet_at:
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

    def _details_line(self) -> str:
        st = self._state
        parts = [f"**Production:** {st.production_status or 'not yet acknowledged by D1'}"]
        if st.due_date:
            parts.append(f"**Due:** {st.due_date}")
        if st.shipment and st.shipment.status:
            ship = st.shipment
            parts.append(f"**Shipment:** {ship.status} ({ship.carrier or 'carrier'} {ship.trackingNumber or ''})")
        if st.outcome:
            parts.append(f"**Outcome:** {st.outcome.value}" + (f" ({st.outcome_reason})" if st.outcome_reason else ""))
        if st.timeline:
            last = st.timeline[-1]
            latest = last.production_status or last.operation
            parts.append(f"**Updates:** {len(st.timeline)}, latest {latest} at {last.d1_time}")
        if st.unknown_statuses:
            parts.append(f"**Unknown statuses seen:** {', '.join(st.unknown_statuses)}")
        return "  \n".join(parts)
