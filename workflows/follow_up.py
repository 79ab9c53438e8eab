"""Following one card through D1's updates: what a card order and a tracking have in common.

Both workflows (``CardOrderWorkflow``, ``CardTrackingWorkflow``) apply D1's notifications
through the state machine, wait for news with one durable timer per silence window, ask
D1's status endpoint when D1 goes quiet, finish after carrier tracking stayed quiet long
enough after shipping, and keep the search attributes and the UI's details line current.
That behaviour lives here, once; the workflows only add what is theirs (submission, pull
& change, their end rules). Runs inside the workflow sandbox: no I/O, workflow APIs only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from activities import contract as acts
from contracts import search_attributes as sa
from contracts.card_order import OrderState, OrderTiming
from d1.notifications import OperationNotification
from workflows import order_state
from workflows.details_line import attribute_values
from workflows.order_state import Applied
from workflows.outcomes import call_failure
from workflows.returns import quiet_ending
from workflows.service_levels import Measure

# A worker that dies in the middle of a D1 call is noticed this fast (activities heartbeat).
HEARTBEAT_TIMEOUT = timedelta(seconds=5)
# Calls that must reach D1 (submissions, changes, trackings): retried until their give-up
# window (schedule-to-close) ends; the activity's next_retry_delay honours Retry-After.
D1_CALL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=60)
)
T = TypeVar("T")


async def call_d1(
    activity: str,
    arg: object,
    result_type: type[T],
    *,
    start_to_close: timedelta,
    give_up_after: timedelta,
    summary: str,
) -> T:
    """Run an activity that must reach D1 (submission, change, tracking, batch)."""
    result: T = await workflow.execute_activity(
        activity,
        arg,
        result_type=result_type,
        start_to_close_timeout=start_to_close,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        schedule_to_close_timeout=give_up_after,
        retry_policy=D1_CALL_RETRY,
        summary=summary,
    )
    return result


RECONCILE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)
_SA_KEYS = {
    key.name: key
    for key in (
        sa.PRODUCTION_STATUS,
        sa.SHIPMENT_STATUS,
        sa.TRACKING_NUMBER,
        sa.ORDER_OUTCOME,
        sa.DUE_DATE,
        sa.SERVICE_LABELS,
        sa.SHIPPED_AT,
        sa.SHIPPED_LATE,
        sa.LATE_HOURS,
    )
}
# Card orders do not upsert a change that only moves to a transient value: D1's
# acknowledgement CARD_PROD_REQUESTED (DATA_PREPARED, with the due date, follows once the
# data is processed), CARD_PROD_READY (the data reached the personalization
# center; the search attribute keeps DATA_PREPARED until production starts) and the
# carrier's ordinary progress scans between the first scan and the end (InTransit,
# OutForDelivery). Each upsert is a history event and a visibility write on the server, per
# notification (docs/benchmarks.md prices one at ~5 ms of server CPU); these values stay in
# the details line, the view query and the timeline, and the next upsert carries whatever
# differs by then. Every other change (the due date, production under way and done, the
# first shipment with its tracking number, carrier exceptions, the end) is upserted.
TRANSIENT_VALUES: dict[str, frozenset[object]] = {
    sa.PRODUCTION_STATUS.name: frozenset({"CARD_PROD_REQUESTED", "CARD_PROD_READY"}),
    sa.SHIPMENT_STATUS.name: frozenset({"InTransit", "OutForDelivery"}),
}


def only_transient(changes: dict[str, object]) -> bool:
    return bool(changes) and all(value in TRANSIENT_VALUES.get(name, ()) for name, value in changes.items())


@dataclass(kw_only=True)
class Follower:
    """The follow-up state of one card. ``status_input`` is what the status check sends D1
    (None: D1 offers no status for it; silence is then only noted, never reconciled).
    ``skip_transient_upserts``: leave changes to transient values out of the search
    attributes (card orders; :data:`TRANSIENT_VALUES`)."""

    issuer_id: str
    state: OrderState
    timing: OrderTiming
    produced_is_final: bool
    status_input: acts.StatusInput | None
    skip_transient_upserts: bool = False
    # Attributes that only ride along an upsert made anyway, never cause one (a card order's
    # service levels, workflows/service_levels.py): no command of their own in the history.
    riding_attributes: Callable[[], dict[str, object]] | None = None
    changed: bool = False
    reconcile_requested: bool = False
    last_progress_at: datetime | None = None
    shipment_changed_at: datetime | None = None
    silences: int = 0
    _published: dict[str, object] = field(default_factory=dict)
    _wake: asyncio.Task[None] | None = None

    def start_clocks(self, last_progress_at: datetime | None, shipment_changed_at: datetime | None) -> None:
        """At the start of a run (clocks carried across continue-as-new, else now)."""
        now = workflow.now()
        self.last_progress_at = last_progress_at or now
        if self.state.shipped:
            self.shipment_changed_at = shipment_changed_at or now

    def apply(self, op: OperationNotification, *, source: str) -> Applied:
        was_shipped, old_ship = self.state.shipped, self.state.shipment
        result = order_state.apply(
            self.state,
            op,
            source=source,
            delivered_statuses=frozenset(self.timing.delivered_shipment_statuses),
            returned_statuses=frozenset(self.timing.returned_shipment_statuses),
            produced_is_final=self.produced_is_final,
        )
        if result in (Applied.ADVANCED, Applied.RECORDED):
            now = workflow.now()
            self.last_progress_at = now
            if self.state.shipped and (not was_shipped or self.state.shipment != old_ship):
                self.shipment_changed_at = now
            self.changed = True
        return result

    def deadlines(self) -> tuple[datetime, datetime | None]:
        """When to act without news: reconcile after silence, finish after carrier quiet."""
        assert self.last_progress_at is not None
        reconcile_at = self.last_progress_at + self.timing.reconcile_after
        quiet_at = (
            self.shipment_changed_at + self.timing.quiet_after_shipped
            if self.state.shipped and self.shipment_changed_at is not None
            else None
        )
        return (min(reconcile_at, quiet_at) if quiet_at else reconcile_at), quiet_at

    async def wait_for_news(self) -> None:
        """Wait for an update, an operator's request or the deadline.

        One durable timer covers a whole silence window: news does not cancel it (that
        would cost two history events per update); when it fires early because progress
        moved the deadline, the next round arms a timer for the remainder only."""
        deadline, _ = self.deadlines()
        if self._wake is None or self._wake.done():
            delay = max(deadline - workflow.now(), timedelta(seconds=1))
            self._wake = asyncio.create_task(workflow.sleep(delay))
        wake = self._wake
        self.changed = False
        await workflow.wait_condition(lambda: self.changed or self.reconcile_requested or wake.done())
        if self.reconcile_requested:
            self.reconcile_requested = False
            await self.reconcile()
            return
        if not wake.done():
            return  # news; the timer keeps running
        now = workflow.now()
        deadline, quiet_at = self.deadlines()
        if now < deadline:
            return  # progress moved the deadline: re-armed for the remainder next round
        if quiet_at is not None and now >= quiet_at:
            order_state.end(self.state, *quiet_ending(self.state, self.timing))
            return
        await self.reconcile()

    async def follow_until_finished(self, carry_over: Callable[[], object], after_news: Callable[[], None]) -> None:
        """Round after round of news until the outcome; continues as new with ``carry_over()``
        when the history grows long."""
        while not self.state.finished:
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(carry_over())
            await self.wait_for_news()
            after_news()

    async def close(self) -> None:
        # Stragglers (a duplicate of the last step, a late carrier scan) still join the timeline.
        if self.timing.close_grace > timedelta(0):
            await workflow.sleep(self.timing.close_grace)
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def reconcile(self) -> None:
        if self.status_input is None:
            self.silences += 1  # nothing to ask: the details line says so
            self.last_progress_at = workflow.now()
            return
        self.state.reconciliations += 1
        try:
            latest = await workflow.execute_activity(
                acts.FETCH_PRODUCTION_STATUS,
                self.status_input,
                result_type=OperationNotification | None,  # type: ignore[arg-type]
                start_to_close_timeout=timedelta(seconds=30),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RECONCILE_RETRY,
                summary="Reconcile status with D1",
            )
        except ActivityError as err:
            workflow.logger.warning("reconciliation failed; will try again later: %s", call_failure(err).text)
            latest = None
        if latest is not None:
            self.apply(latest, source="reconciliation")
        # Whether or not D1 said something new, the next check is one window away.
        self.last_progress_at = workflow.now()

    def _changes(self, values: dict[str, object]) -> dict[str, object]:
        return {
            name: value for name, value in values.items() if value is not None and self._published.get(name) != value
        }

    def publish(self, details: str) -> None:
        changes = self._changes(attribute_values(self.state))
        if changes and not (self.skip_transient_upserts and only_transient(changes)):
            if self.riding_attributes is not None:
                changes.update(self._changes(self.riding_attributes()))
            workflow.upsert_search_attributes(
                [_SA_KEYS[name].value_set(value) for name, value in changes.items()]  # type: ignore[arg-type]
            )
            self._published.update(changes)
        workflow.set_current_details(details)

    def count(self, name: str, **labels: str) -> None:
        """A product counter (observability/names.py); replay-safe: nothing is recorded on replay."""
        workflow.metric_meter().create_counter(name).add(1, {"issuer_id": self.issuer_id, **labels})

    def record(self, measures: list[Measure]) -> None:
        """Service-level measures (workflows/service_levels.py); replay-safe like :meth:`count`."""
        meter = workflow.metric_meter()
        for m in measures:
            if m.seconds is None:
                meter.create_counter(m.metric).add(1, m.labels)
            else:
                meter.create_histogram_float(m.metric, unit="s").record(m.seconds, m.labels)
