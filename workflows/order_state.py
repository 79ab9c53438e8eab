"""The order's state machine, as pure functions over :class:`contracts.card_order.OrderState`
(no Temporal, no I/O, no clock).

D1 delivers notifications at least once, duplicated and out of order; the rules that make
the outcome independent of arrival order (dedup, ranks, canonical timeline, unknown
statuses) are in docs/d1/notifications.md §8, those of pull & change (a
:class:`ChangeRecord` settled by ``UPDATE_ORDER``, which joins the timeline at the stage the
center decided at) in docs/d1/card-order.md §14. Which production statuses end an order,
and with what outcome, is the one table :data:`d1.statuses.TERMINAL_STATUS_OUTCOMES`.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

from contracts.card_order import (
    PENDING_CHANGE,
    ChangeRecord,
    ChangeStatus,
    OrderError,
    OrderState,
    Outcome,
    TimelineEntry,
)
from d1.notifications import OperationNotification
from d1.statuses import (
    TERMINAL_STATUS_OUTCOMES,
    Operation,
    OperationStatus,
    ProductionStatus,
    production_rank,
    shipment_rank,
)

UNKNOWN_RANK = 1000
# A card tracked for weeks can get hundreds of carrier scans. The timeline keeps every
# production milestone and the most recent carrier updates; older carrier updates are
# counted, not kept, so the state (carried across continue-as-new) stays bounded.
MAX_TIMELINE = 200


def _first_seen(st: OrderState, op: OperationNotification) -> str | None:
    """The update's key if it is new (now remembered), else None. Dedup memory holds
    digests: bounded size per update, nothing readable."""
    key = hashlib.sha256(op.dedup_key().encode()).hexdigest()[:20]
    if key in st.seen_keys:
        st.duplicates_ignored += 1
        return None
    st.seen_keys.append(key)
    st.updates_applied += 1
    return key


# Values of UPDATE_ORDER details.status (undocumented by D1: the emulator's, and likely synonyms).
_ACCEPTED_WORDS = frozenset({"ACCEPTED", "SUCCESSFUL", "DONE"})
_REFUSED_WORDS = frozenset({"REFUSED", "REJECTED", "DENIED", "FAILED"})


class Applied(StrEnum):
    ADVANCED = "advanced"  # moved the order forward
    RECORDED = "recorded"  # new fact, but stale or unknown: timeline only
    DUPLICATE = "duplicate"
    IGNORED = "ignored"  # not about this order (other operation type we do not track)


def apply(
    st: OrderState,
    op: OperationNotification,
    *,
    source: str,
    delivered_statuses: frozenset[str] = frozenset({"Delivered"}),
    returned_statuses: frozenset[str] = frozenset({"Returned"}),
    produced_is_final: bool = False,
) -> Applied:
    """Apply one D1 update to ``st`` (in place). ``produced_is_final``: the card is not shipped
    (INSTANT, CENTRAL without shipment), so CARD_PROD_DONE ends the order as PRODUCED."""
    if op.operation not in (Operation.UPDATE_ORDER, Operation.PRODUCE, Operation.STANDALONE_TRACKING):
        return Applied.IGNORED
    key = _first_seen(st, op)
    if key is None:
        return Applied.DUPLICATE
    if op.operation == Operation.UPDATE_ORDER:
        return _apply_update_order(st, op, key, source)

    status = op.production_status
    rank = production_rank(status)
    ship = op.shipment
    s_rank = shipment_rank(ship.status if ship else None)
    _add_to_timeline(st, op, key=key, source=source, rank=rank, s_rank=s_rank)

    if st.operation_id is None:
        st.operation_id = op.operationId
    details = op.details
    if details is not None:
        # Facts that do not regress: keep the first value seen, refresh on progress.
        if details.dueDate and (st.due_date is None or (rank or 0) >= st.production_rank):
            st.due_date = details.dueDate
        if details.productionSite and (st.production_site is None or (rank or 0) >= st.production_rank):
            st.production_site = details.productionSite

    if op.status == OperationStatus.FAILED:
        _record_failure(st, op, source)

    if rank is None:
        if status and status not in st.unknown_statuses:
            st.unknown_statuses.append(status)
        return Applied.RECORDED

    advanced = False
    if rank > st.production_rank:
        st.production_status = status
        st.production_rank = rank
        st.operation_status = op.status
        advanced = True
    if ship is not None and rank >= st.production_rank and (s_rank > st.shipment_rank or (st.shipment is None)):
        st.shipment = ship
        st.shipment_rank = s_rank
        advanced = True
    elif ship is not None and st.shipment is not None and s_rank == st.shipment_rank:
        # Same carrier step with new details (tracking number, message): keep the latest facts.
        merged = st.shipment.model_copy(update=ship.model_dump(exclude_none=True))
        if merged != st.shipment:
            st.shipment = merged
            advanced = True

    _settle_outcome(st, op, delivered_statuses, returned_statuses)
    if produced_is_final and st.outcome is None and st.production_status == ProductionStatus.CARD_PROD_DONE:
        st.outcome = Outcome.PRODUCED
    return Applied.ADVANCED if advanced else Applied.RECORDED


def end(st: OrderState, outcome: Outcome, reason: str | None = None, error: OrderError | None = None) -> None:
    """Finish the order (the first outcome wins; ``error`` is recorded whatever the outcome)."""
    if error is not None:
        st.errors.append(error)
    if st.outcome is None:
        st.outcome = outcome
        st.outcome_reason = reason


def _record_failure(st: OrderState, op: OperationNotification, source: str) -> None:
    if op.errorCode is None and op.error is None and op.production_status == ProductionStatus.CARD_PROD_CANCELED:
        return  # a cancel the issuer asked for is not an error
    st.errors.append(OrderError(source=source, error_code=op.errorCode, error=op.error))


def _apply_update_order(st: OrderState, op: OperationNotification, key: str, source: str) -> Applied:
    details = op.details
    extra = (details.model_extra or {}) if details is not None else {}
    kind = extra.get("type") if isinstance(extra.get("type"), str) else None
    word = (details.status or "").upper() if details is not None else ""
    if word in _ACCEPTED_WORDS or (not word and op.status == OperationStatus.SUCCESSFUL):
        outcome: ChangeStatus | None = ChangeStatus.ACCEPTED
    elif word in _REFUSED_WORDS or (not word and op.status == OperationStatus.FAILED):
        outcome = ChangeStatus.REFUSED
    else:
        outcome = None  # PENDING or a new word: recorded, nothing decided yet
    stage = extra.get("productionStatus") if isinstance(extra.get("productionStatus"), str) else None
    reason = (details.reason if details is not None else None) or op.error
    # Canonical place: right after the production stage the center decided at.
    stage_rank = production_rank(stage) if stage else None
    rank = (stage_rank if stage_rank is not None else st.production_rank) + 1
    _add_entry(
        st,
        op,
        key,
        source,
        reason=reason,
        sort_rank=rank,
        sort_shipment_rank=0,
        change_type=kind,
        change_outcome=outcome.value if outcome else None,
    )
    if outcome is None:
        return Applied.RECORDED
    record = _change_for(st, op.operationId, kind)
    if record is None:  # a change the product did not ask for (another channel): keep it visible
        record = ChangeRecord(
            change_id=f"d1-{op.operationId}",
            type=kind or "UNKNOWN",
            status=ChangeStatus.SENT,
            requested_at=op.startTime,
            d1_operation_id=op.operationId,
        )
        st.changes.append(record)
    if record.status in PENDING_CHANGE:
        record.status = outcome
        record.reason = reason
        record.decided_at = op.endTime or op.startTime
        record.decided_at_status = stage
        if record.d1_operation_id is None:
            record.d1_operation_id = op.operationId
    return Applied.RECORDED


def _change_for(st: OrderState, d1_operation_id: str, kind: str | None) -> ChangeRecord | None:
    """The change this outcome is about: by D1's operationId, else the pending one (the
    outcome can arrive before the 202 that carries the operationId is processed)."""
    for record in st.changes:
        if record.d1_operation_id == d1_operation_id:
            return record
    pending = [c for c in st.changes if c.status in PENDING_CHANGE and c.d1_operation_id is None]
    same_type = [c for c in pending if kind is None or c.type == kind]
    candidates = same_type or pending
    return candidates[0] if candidates else None


def _settle_outcome(
    st: OrderState, op: OperationNotification, delivered: frozenset[str], returned: frozenset[str]
) -> None:
    if st.outcome is not None:
        return
    status = st.production_status
    reason = op.details.reason if op.details else None
    terminal = TERMINAL_STATUS_OUTCOMES.get(status or "")
    if terminal is not None:
        st.outcome = Outcome(terminal)
        st.outcome_reason = reason or op.error
        return
    ship_status = st.shipment.status if st.shipment else None
    if ship_status in delivered:
        st.outcome = Outcome.DELIVERED
    elif ship_status in returned:
        st.outcome = Outcome.RETURNED
        st.outcome_reason = st.shipment.message if st.shipment else None
    elif op.status == OperationStatus.FAILED and op.production_status == status:
        st.outcome = Outcome.FAILED
        st.outcome_reason = op.error or op.errorCode or reason


def _add_entry(st: OrderState, op: OperationNotification, key: str, source: str, **fields: Any) -> None:
    st.timeline.append(
        TimelineEntry(
            key=key,
            operation=op.operation,
            operation_status=op.status,
            error_code=op.errorCode,
            error=op.error,
            d1_time=op.endTime or op.startTime,
            source=source,
            **fields,
        )
    )
    st.timeline.sort(key=lambda e: (e.sort_rank, e.sort_shipment_rank, e.d1_time, e.key))


def _add_to_timeline(
    st: OrderState, op: OperationNotification, *, key: str, source: str, rank: int | None, s_rank: int
) -> None:
    ship = op.shipment
    _add_entry(
        st,
        op,
        key,
        source,
        production_status=op.production_status,
        shipment_status=ship.status if ship else None,
        shipment_message=ship.message if ship else None,
        tracking_number=ship.trackingNumber if ship else None,
        carrier=ship.carrier if ship else None,
        reason=op.details.reason if op.details else None,
        sort_rank=rank if rank is not None else UNKNOWN_RANK,
        sort_shipment_rank=s_rank,
    )
    if len(st.timeline) > MAX_TIMELINE:
        shipped_rank = production_rank(ProductionStatus.CARD_SHIPPED)
        carrier = [i for i, e in enumerate(st.timeline) if e.sort_rank == shipped_rank and e.shipment_status]
        drop = carrier[0] if len(carrier) > 1 else 0
        del st.timeline[drop]
        st.timeline_dropped += 1
