"""Service levels of a card order, as pure functions (no Temporal, no I/O, no clock).

D1 turns each order's service into a due date, the *estimated shipment date*
(docs/d1/card-order.md §15: CREATION / REPLACEMENT D+1, RENEWAL D+10, URGENT the same
day). Here: the deadline that date sets, whether and by how much the card shipped after
it, the durations request → shipped → delivered, and the labels they are measured by.
:func:`observe` records the milestones in the order's state once each (the state is
carried across continue-as-new, so nothing is measured twice) and says what to measure;
the workflow records it through its replay-safe metric meter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts import search_attributes as sa
from contracts.card_order import OrderRef, OrderState, Outcome
from d1.statuses import ProductionStatus
from observability import names
from workflows.details_line import due_date_value as parse_time

EXCEPTION_OUTCOMES = frozenset({Outcome.DATA_EXCEPTION, Outcome.PRODUCTION_EXCEPTION})
SHIPPED_STATUSES = frozenset({ProductionStatus.CARD_SHIPPED, ProductionStatus.CARD_RETURNED})
CARRIER_EXCEPTION = "Exception"  # d1/statuses.py SHIPMENT_RANK


@dataclass(frozen=True)
class Measure:
    """One thing to record: a histogram observation (``seconds``) or a counter increment."""

    metric: str
    labels: dict[str, str] = field(default_factory=dict)
    seconds: float | None = None


def due_deadline(due_date: str | None) -> datetime | None:
    """When the card must have shipped: the end of D1's due date (a date, ``YYYY-MM-DD``,
    G), since a card shipped any time that day is on time; a due *time* (an URGENT order's
    hours) is the deadline itself. UTC when D1 gives no zone."""
    moment = parse_time(due_date)
    if moment is None or due_date is None:
        return None
    if len(due_date.strip()) == len("YYYY-MM-DD"):
        return moment + timedelta(days=1)
    return moment


def hours_late(due_date: str | None, shipped_at: datetime) -> float | None:
    """Hours between the deadline and the shipment (0 when on time); None without a due date."""
    deadline = due_deadline(due_date)
    if deadline is None:
        return None
    return round(max((shipped_at - deadline).total_seconds(), 0.0) / 3600, 2)


def labels(ref: OrderRef) -> dict[str, str]:
    """The labels of the service: the program's card product (D1's cardProductId), D1's
    issuance and priority. Few values each (the program's onboarding fixes them)."""
    return sa.label_values(service_labels(ref))


def service_labels(ref: OrderRef, production_site: str | None = None) -> list[str]:
    return sa.service_labels(ref.card_product_id, ref.issuance, ref.priority, production_site)


def _d1_time_of(st: OrderState, *, production_status: str | None = None, shipment: bool = False) -> datetime | None:
    """D1's time of the first timeline entry at that stage (D1's clock, not when we heard)."""
    for entry in st.timeline:
        if production_status is not None and entry.production_status != production_status:
            continue
        if shipment and st.shipment is not None and entry.shipment_status != st.shipment.status:
            continue
        moment = parse_time(entry.d1_time)
        if moment is not None:
            return moment
    return None


def _has_shipped(st: OrderState) -> bool:
    """The card left the personalization center (``OrderState.shipped`` also holds for the
    exceptions and cancellations, ranked after shipping)."""
    return st.shipment is not None or st.production_status in SHIPPED_STATUSES


def _seconds(start: str | None, end: datetime) -> float | None:
    began = parse_time(start)
    return max((end - began).total_seconds(), 0.0) if began is not None else None


def observe(st: OrderState, ref: OrderRef, now: datetime, *, issuer_id: str) -> list[Measure]:
    """Record in ``st`` the milestones reached since the last call; what to measure for them.

    ``requested_at`` is set only on an order's very first call (nothing submitted, no D1
    update yet): an order that started before service levels were measured has none, and
    measures no duration from it."""
    measures: list[Measure] = []
    tags = {"issuer_id": issuer_id, **labels(ref)}
    if st.requested_at is None and not st.submitted and not st.timeline:
        st.requested_at = now.isoformat()
    if st.shipped_at is None and _has_shipped(st):
        shipped = _d1_time_of(st, production_status=ProductionStatus.CARD_SHIPPED) or now
        st.shipped_at = shipped.isoformat()
        st.late_hours = hours_late(st.due_date, shipped)
        st.shipped_late = None if st.late_hours is None else st.late_hours > 0
        took = _seconds(st.requested_at, shipped)
        if took is not None:
            measures.append(Measure(names.REQUEST_TO_SHIPPED, tags, took))
        if st.shipped_late:
            measures.append(Measure(names.SHIPPED_LATE, tags))
    if st.outcome is not None and st.ended_at is None:
        ended = (_d1_time_of(st, shipment=True) if st.outcome == Outcome.DELIVERED else None) or now
        st.ended_at = ended.isoformat()
        if st.outcome == Outcome.DELIVERED:
            for metric, start in (
                (names.SHIPPED_TO_DELIVERED, st.shipped_at),
                (names.REQUEST_TO_DELIVERED, st.requested_at),
            ):
                took = _seconds(start, ended)
                if took is not None:
                    measures.append(Measure(metric, tags, took))
        elif st.outcome == Outcome.RETURNED:
            measures.append(Measure(names.RETURNED, tags))
        if st.outcome in EXCEPTION_OUTCOMES:
            measures.append(Measure(names.EXCEPTIONS, {**tags, "kind": st.outcome.value}))
    # Each carrier exception scan once, when it joins the timeline.
    scans = sum(1 for entry in st.timeline if entry.shipment_status == CARRIER_EXCEPTION)
    for _ in range(scans - st.carrier_exceptions):
        measures.append(Measure(names.EXCEPTIONS, {**tags, "kind": "CARRIER_EXCEPTION"}))
    st.carrier_exceptions = max(st.carrier_exceptions, scans)
    return measures


def attribute_values(st: OrderState, ref: OrderRef) -> dict[str, object]:
    """The service-level search attributes that follow the state (None: nothing to say yet)."""
    return {
        sa.SERVICE_LABELS.name: service_labels(ref, st.production_site) if st.production_site else None,
        sa.SHIPPED_AT.name: parse_time(st.shipped_at),
        sa.SHIPPED_LATE.name: st.shipped_late,
        sa.LATE_HOURS.name: st.late_hours,
    }
