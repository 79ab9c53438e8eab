"""Which events a card's state change produces (pure: no Temporal, no clock, no I/O).

The order workflow calls :func:`new_events` after each round of news with the order's
state and what it announced so far (:class:`Announced`); the answer is the events to emit,
in the order they happened. Ids are derived from the workflow id and the fact (the D1
update's de-duplication key, the outcome, the change's id and step), so a fact announced
twice (after a continue-as-new, which starts from a fresh :class:`Announced`) has the same
id and a consumer drops the copy (docs/events.md, "Delivery guarantees"). An activation the
order could not announce (it closed) is announced by the card's activation record with
:func:`activation_events`: the order's event for it, under the same id.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime

from pydantic import BaseModel, Field

from contracts.activation import ActivationFlag, ActivationRecord, timeline_key
from contracts.card_order import ChangeRecord, ChangeStatus, OrderRef, OrderState, Outcome, TimelineEntry
from d1.statuses import ProductionStatus, production_rank
from events.catalogue import Event, EventType, Subject, tracking_type_of

SHIPPED_RANK = production_rank(ProductionStatus.CARD_SHIPPED) or 0
_OUTCOME_TYPES = {
    Outcome.DELIVERED: EventType.DELIVERED,
    Outcome.RETURNED: EventType.RETURNED,
    Outcome.SHIPPED: EventType.NOT_DELIVERED,
    Outcome.LOST_IN_TRANSIT: EventType.NOT_DELIVERED,
    Outcome.PRODUCED: EventType.PRODUCED,
    Outcome.REJECTED: EventType.REJECTED,
    Outcome.CRYPTO_REJECTED: EventType.CRYPTO_REJECTED,
    Outcome.CANCELED: EventType.CANCELED,
    Outcome.SUBMIT_FAILED: EventType.FAILED,
    Outcome.DATA_EXCEPTION: EventType.FAILED,
    Outcome.PRODUCTION_EXCEPTION: EventType.FAILED,
    Outcome.FAILED: EventType.FAILED,
}
# Outcomes that come from a D1 update: their time is that update's (else: when noticed).
_D1_TIMED = frozenset(
    {
        Outcome.DELIVERED,
        Outcome.RETURNED,
        Outcome.CANCELED,
        Outcome.DATA_EXCEPTION,
        Outcome.PRODUCTION_EXCEPTION,
        Outcome.FAILED,
        Outcome.PRODUCED,
    }
)
_TRACKING_OUTCOMES = {
    EventType.DELIVERED: EventType.TRACKING_DELIVERED,
    EventType.RETURNED: EventType.TRACKING_RETURNED,
    EventType.NOT_DELIVERED: EventType.TRACKING_NOT_DELIVERED,
}
# A change's steps: awaiting a second operator, asked (approved, or needing no approval), sent
# to D1, decided (3: ACCEPTED, REFUSED, FAILED, EXPIRED, REJECTED).
_CHANGE_STEPS = {ChangeStatus.AWAITING_APPROVAL: 0, ChangeStatus.REQUESTED: 1, ChangeStatus.SENT: 2}
_DECIDED = 3
# Timeline entries that are news about the card, not a D1 step (workflows/activation.py).
ACTIVATION_SOURCE = "activation"


class Announced(BaseModel):
    """What has been announced for one card (the workflow keeps it; bounded like the timeline)."""

    created: bool = False
    submitted: bool = False
    production_rank: int = 0
    shipped: bool = False
    shipment_rank: int = 0
    shipment_key: str | None = None
    entries: list[str] = Field(default_factory=list)  # timeline keys already looked at
    changes: dict[str, int] = Field(default_factory=dict)  # change id -> last step announced
    outcome: str | None = None


def order_subject(workflow_id: str, ref: OrderRef) -> Subject:
    return Subject(
        workflow_id=workflow_id,
        issuer_id=ref.issuer_id,
        card_id=ref.card_id,
        issuer_request_id=ref.issuer_request_id,
        masked_pan=ref.masked_pan,
    )


def event_id(workflow_id: str, *fact: str) -> str:
    # Base32, not hex: 32 hex digits hold a Luhn-valid run of 13+ decimal digits about once in
    # 450 ids, which every PAN scanner (the bank's, the API's own checks) takes for a card number.
    digest = hashlib.sha256("|".join((workflow_id, *fact)).encode()).digest()
    return "evt_" + base64.b32encode(digest[:20]).decode().lower()


def new_events(
    subject: Subject,
    state: OrderState,
    done: Announced,
    *,
    now: datetime,
    end_statuses: Iterable[str] = ("Delivered", "Returned"),
    data: Mapping[str, object] | None = None,
) -> list[Event]:
    """The events ``state`` holds that ``done`` has not announced yet; ``done`` is updated.
    ``end_statuses``: carrier statuses that end the order (announced by the outcome event
    instead of a shipment update); ``data``: extra members of the created event."""
    out = _Builder(subject, now.isoformat())
    if not done.created:
        done.created = True
        out.add(EventType.ORDER_CREATED, ("created",), None, dict(data or {}))
    if not done.submitted and state.submitted and state.operation_id and subject.kind == "order":
        done.submitted = True
        out.add(EventType.ORDER_SUBMITTED, ("submitted",), None, {"operation_id": state.operation_id})
    for change in state.changes:
        _change_events(out, change, done)
    ends = frozenset(end_statuses)
    for entry in state.timeline:
        if entry.key in done.entries:
            continue
        done.entries.append(entry.key)
        # After the outcome, stragglers (a late carrier scan) stay in the timeline only.
        if entry.source == ACTIVATION_SOURCE:
            _activation_event(out, state, entry)
        elif entry.change_type is None and entry.change_outcome is None and done.outcome is None:
            _entry_events(out, state, entry, done, ends)
    in_timeline = {entry.key for entry in state.timeline}
    done.entries = [key for key in done.entries if key in in_timeline]  # bounded as the timeline is
    if state.outcome is not None and done.outcome is None:
        done.outcome = state.outcome.value
        out.add(*_outcome_event(state))
    return out.events


class _Builder:
    def __init__(self, subject: Subject, now: str) -> None:
        self.subject = subject
        self.now = now
        self.events: list[Event] = []

    def add(self, kind: EventType, fact: tuple[str, ...], when: str | None, data: Mapping[str, object]) -> None:
        s = self.subject
        if s.kind == "tracking":
            if kind == EventType.ORDER_CREATED:
                kind = EventType.TRACKING_STARTED
            elif kind in _TRACKING_OUTCOMES:
                kind = _TRACKING_OUTCOMES[kind]
            elif kind in (EventType.PRODUCTION_STATUS_CHANGED, EventType.SHIPPED, EventType.SHIPMENT_UPDATED):
                kind = tracking_type_of(kind)
            else:
                kind = EventType.TRACKING_ENDED
            data = {"tracking_type": s.tracking_type, **data}
        self.events.append(
            Event(
                id=event_id(s.workflow_id, kind.value, *fact),
                type=kind.value,
                occurred_at=when or self.now,
                emitted_at=self.now,
                issuer_id=s.issuer_id,
                card_id=s.card_id,
                issuer_request_id=s.issuer_request_id,
                workflow_id=s.workflow_id,
                masked_pan=s.masked_pan,
                data={k: v for k, v in data.items() if v is not None},
            )
        )


def _shipment_data(entry: TimelineEntry) -> dict[str, object]:
    return {
        "carrier": entry.carrier,
        "tracking_number": entry.tracking_number,
        "shipment_status": entry.shipment_status,
        "message": entry.shipment_message,  # D1's words for the cardholder, where given
    }


def _entry_events(
    out: _Builder, state: OrderState, entry: TimelineEntry, done: Announced, ends: frozenset[str]
) -> None:
    """A D1 update that moved the card forward; stale or unknown updates stay in the timeline only."""
    rank = entry.sort_rank
    known = production_rank(entry.production_status) is not None
    if known and rank > done.production_rank:
        done.production_rank = rank
        if rank >= SHIPPED_RANK and entry.production_status == ProductionStatus.CARD_SHIPPED:
            done.shipped = True
            done.shipment_rank = entry.sort_shipment_rank
            done.shipment_key = _shipment_key(entry)
            data = _shipment_data(entry) | {"tracking_url": _tracking_url(state, entry)}
            out.add(EventType.SHIPPED, (entry.key,), entry.d1_time, data)
            return
        data = {
            "production_status": entry.production_status,
            "operation_status": entry.operation_status,
            "reason": entry.reason,
            "error_code": entry.error_code,
            "error": entry.error,
            "due_date": state.due_date,
            "production_site": state.production_site,
        }
        out.add(EventType.PRODUCTION_STATUS_CHANGED, (entry.key,), entry.d1_time, data)
        return
    if not (done.shipped and entry.shipment_status and rank >= done.production_rank):
        return
    key = _shipment_key(entry)
    if key == done.shipment_key or entry.sort_shipment_rank < done.shipment_rank:
        return
    done.shipment_rank, done.shipment_key = entry.sort_shipment_rank, key
    if entry.shipment_status in ends:
        return  # the outcome event says it
    data = _shipment_data(entry) | {"tracking_url": _tracking_url(state, entry)}
    out.add(EventType.SHIPMENT_UPDATED, (entry.key,), entry.d1_time, data)


def _shipment_key(entry: TimelineEntry) -> str:
    return f"{entry.shipment_status}|{entry.tracking_number}|{entry.shipment_message}"


def _tracking_url(state: OrderState, entry: TimelineEntry) -> str | None:
    """The timeline keeps no URL: the order's current shipment has it, if it is the same parcel."""
    ship = state.shipment
    if ship is None or (entry.tracking_number and ship.trackingNumber != entry.tracking_number):
        return None
    return ship.trackingUrl


def _change_events(out: _Builder, change: ChangeRecord, done: Announced) -> None:
    step = _CHANGE_STEPS.get(change.status, _DECIDED)
    last = done.changes.get(change.change_id, -1)
    if step <= last:
        return
    done.changes[change.change_id] = step
    base: dict[str, object] = {
        "change_id": change.change_id,
        "change_type": change.type,
        "redirected_to": change.redirected_to,
    }
    data: dict[str, object]
    if last < 0:
        awaiting: dict[str, object] = (
            {"awaiting_approval": True, "approval_expires_at": change.approval_expires_at} if step == 0 else {}
        )
        data = base | {"requested_by": change.requested_by} | awaiting
        out.add(EventType.CHANGE_REQUESTED, (change.change_id, "requested"), change.requested_at, data)
    if last < 1 <= step and change.approved_by is not None:
        data = base | {"requested_by": change.requested_by, "approved_by": change.approved_by}
        out.add(EventType.CHANGE_APPROVED, (change.change_id, "approved"), change.approved_at, data)
    sent = change.d1_operation_id is not None or change.status in (ChangeStatus.SENT, ChangeStatus.ACCEPTED)
    if last < 2 <= step and sent:
        out.add(
            EventType.CHANGE_SENT, (change.change_id, "sent"), None, base | {"operation_id": change.d1_operation_id}
        )
    if step == _DECIDED:
        data = base | {"decision": change.status.value, "reason": change.reason, "at_status": change.decided_at_status}
        out.add(EventType.CHANGE_DECIDED, (change.change_id, "decided"), change.decided_at, data)


def _activation_event(out: _Builder, state: OrderState, entry: TimelineEntry) -> None:
    """D1's Card Activation recorded on the order: the bank's card system learns of it, and
    of one before delivery (a card intercepted in the post) as its own type."""
    flag = entry.key.partition(":")[2]  # the entry's own flag: a refusal, then an acceptance, are two
    record = state.activation if state.activation is not None and state.activation.flag.value == flag else None
    _add_activation(out, flag, record.order_stage if record is not None else None, entry.key, entry.d1_time)


def _add_activation(out: _Builder, flag: str, order_stage: str | None, key: str, when: str | None) -> None:
    kind = EventType.CARD_ACTIVATED if flag == ActivationFlag.ACTIVATED else EventType.CARD_ACTIVATED_BEFORE_DELIVERY
    out.add(kind, (key,), when, {"activation": flag, "order_stage": order_stage})


def activation_subject(record: ActivationRecord) -> Subject | None:
    """Whom the card's activation record announces its activation for: the card's order, when
    the order did not take it in time to announce it itself (closed, or past its outcome:
    ``order_announces`` false). None without an order of the product's: nothing to announce it on."""
    if record.order_workflow_id is None or record.order_announces:
        return None
    return Subject(
        workflow_id=record.order_workflow_id,
        issuer_id=record.issuer_id,
        card_id=record.card_id,
        issuer_request_id=record.issuer_request_id,
    )


def activation_events(subject: Subject, record: ActivationRecord, *, now: datetime) -> list[Event]:
    """The event the order would have raised for ``record`` (same type, data and id): a copy
    that both raised (an order that closed while taking it) is one fact, the hub keeps one."""
    out = _Builder(subject, now.isoformat())
    _add_activation(out, record.flag.value, record.order_stage, timeline_key(record.flag), record.activated_at)
    return out.events


def _outcome_event(state: OrderState) -> tuple[EventType, tuple[str, ...], str | None, dict[str, object]]:
    outcome = state.outcome
    assert outcome is not None
    kind = _OUTCOME_TYPES.get(outcome, EventType.FAILED)
    last_error = state.errors[-1] if state.errors else None
    when = state.timeline[-1].d1_time if outcome in _D1_TIMED and state.timeline else None
    data: dict[str, object] = {
        "outcome": outcome.value,
        "reason": state.outcome_reason,
        "production_status": state.production_status,
        "shipment_status": state.shipment.status if state.shipment else None,
        "error_code": last_error.error_code if last_error else None,
        "error": last_error.error if last_error else None,  # D1's field in error, as a JSON path
    }
    return kind, ("outcome", outcome.value), when, data
