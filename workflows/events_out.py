"""Events out of a card workflow: what its state changes announce (events/from_order.py), sent
to the issuer's event hub by a local activity, one at a time, in order (docs/events.md).

A card workflow calls :meth:`EventsOut.observe` wherever it publishes its state and awaits
:meth:`EventsOut.drained` before it returns. The local activity costs the order one marker
event per state change that announces something; while it runs (the worker gathers the
events of all its orders into one signal), the order's workflow task stays open, and
nothing else of the order waits: no endpoint is ever called from here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from contracts.card_order import OrderRef, OrderState, OrderTiming
from contracts.card_tracking import TrackingRef
from events import contract as events_api
from events.catalogue import Event, Subject
from events.from_order import Announced, new_events, order_subject

# Temporal unreachable from the worker: the order waits for it as for any other call.
EMIT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


class EventsOut:
    def __init__(
        self, subject: Subject, *, on: bool, end_statuses: Iterable[str], data: Mapping[str, object] | None = None
    ) -> None:
        self._subject = subject
        self._ends = tuple(end_statuses)
        self._data = data
        self._done = Announced()
        self._queue: list[Event] = []
        self._sender: asyncio.Task[None] | None = None
        # What reached the hub, for the order's view (events/contract.py EVENTS_SENT_QUERY). Not
        # carried across continue-as-new: the next run announces every event again (same ids).
        self.sent: list[events_api.SentEvent] = []
        # The order's input says whether it announces anything (OrderTiming.events: false for
        # orders started before events existed); the worker may still say no (EVENTS_ENABLED).
        self.enabled = on

    def observe(self, state: OrderState) -> None:
        if not self.enabled:
            return
        events = new_events(
            self._subject, state, self._done, now=workflow.now(), end_statuses=self._ends, data=self._data
        )
        self.announce(events)

    def announce(self, events: list[Event]) -> None:
        """Events built by the caller (workflows/activation.py), sent as a state's are."""
        if not events or not self.enabled:
            return
        self._queue += events
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while self._queue and self.enabled:
            batch, self._queue = self._queue, []
            # No summary: its sealed payload cost each marker ~230 bytes; the result, which the
            # marker keeps anyway, names the events sent (events/contract.py emitted).
            sent = await workflow.execute_local_activity(
                events_api.EMIT_EVENTS,
                events_api.EmitInput(issuer_id=self._subject.issuer_id, events=batch),
                result_type=str,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=EMIT_RETRY,
            )
            self.enabled = bool(sent)
            if self.enabled:
                self.sent += [events_api.SentEvent(id=e.id, type=e.type, occurred_at=e.occurred_at) for e in batch]

    async def drained(self) -> None:
        """Every event observed so far is in the hub (before the workflow ends)."""
        await workflow.wait_condition(
            lambda: (not self._queue or not self.enabled) and (self._sender is None or self._sender.done())
        )

    @classmethod
    def for_order(cls, workflow_id: str, ref: OrderRef, timing: OrderTiming) -> EventsOut:
        data = {"card_product_id": ref.card_product_id, "shipment_type": ref.shipment_type, "group_id": ref.group_id}
        return cls(order_subject(workflow_id, ref), on=timing.events, end_statuses=_end_statuses(timing), data=data)

    @classmethod
    def for_tracking(cls, workflow_id: str, ref: TrackingRef, timing: OrderTiming) -> EventsOut:
        subject = Subject(
            kind="tracking",
            workflow_id=workflow_id,
            issuer_id=ref.issuer_id,
            card_id=ref.card_id,
            tracking_type=ref.tracking_type,
        )
        return cls(subject, on=timing.events, end_statuses=_end_statuses(timing), data={"carrier": ref.carrier})


def _end_statuses(timing: OrderTiming) -> list[str]:
    return [*timing.delivered_shipment_statuses, *timing.returned_shipment_statuses]
