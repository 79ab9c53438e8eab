"""The order's state machine, as pure data and functions (no Temporal, no I/O, no clock).

D1 delivers notifications at least once, duplicated and out of order, and the status
endpoint may repeat what notifications said. The rules that make the outcome independent
of arrival order:

* an update's identity is :meth:`OperationNotification.dedup_key`; a key seen once is
  never applied again;
* the current production status only moves to a higher rank, the shipment status only to
  a higher shipment rank; a stale update is still a fact and joins the timeline;
* the timeline is kept in a canonical order (production rank, shipment rank, D1 time,
  key), so the same set of updates yields the same timeline whatever the arrival order;
* unknown statuses are recorded (timeline, ``unknown_statuses``) without moving the order.

Pull & change requests (cancel, accelerate, redirect) are :class:`ChangeRecord` entries;
their outcome arrives as an ``UPDATE_ORDER`` notification (accepted or refused by the
personalization center), which joins the timeline next to the production stage the
center decided at and settles the matching record. An accepted CANCEL ends the order
only when D1 then reports CARD_PROD_CANCELED.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

from pydantic import BaseModel, Field

from d1.notifications import OperationNotification, ShipmentInfo
from d1.statuses import (
    TERMINAL_PRODUCTION_STATUSES,
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


def _key_digest(key: str) -> str:
    """Dedup memory holds digests: bounded size per update, nothing readable."""
    return hashlib.sha256(key.encode()).hexdigest()[:20]


class Outcome(StrEnum):
    DELIVERED = "DELIVERED"
    RETURNED = "RETURNED"
    SHIPPED = "SHIPPED"  # quiet window elapsed after shipping without delivery confirmation
    REJECTED = "REJECTED"  # D1 refused the order request (4xx)
    SUBMIT_FAILED = "SUBMIT_FAILED"  # D1 unreachable for longer than the give-up window
    DATA_EXCEPTION = "DATA_EXCEPTION"
    PRODUCTION_EXCEPTION = "PRODUCTION_EXCEPTION"
    CANCELED = "CANCELED"
    FAILED = "FAILED"  # operation FAILED without a more specific status
    # Produced and not shipped (INSTANT: handed over at the station; CENTRAL without shipment).
    PRODUCED = "PRODUCED"


class ChangeStatus(StrEnum):
    REQUESTED = "REQUESTED"  # accepted by the workflow, D1 not called yet
    SENT = "SENT"  # D1 took the request (202); the personalization center's answer is pending
    ACCEPTED = "ACCEPTED"  # UPDATE_ORDER: accepted by the personalization center
    REFUSED = "REFUSED"  # UPDATE_ORDER: refused by the personalization center (e.g. too late)
    FAILED = "FAILED"  # D1 refused the request itself (4xx) or could not be reached in time


PENDING_CHANGE = frozenset({ChangeStatus.REQUESTED, ChangeStatus.SENT})
# Values of UPDATE_ORDER details.status (undocumented by D1: the emulator's, and likely synonyms).
_ACCEPTED_WORDS = frozenset({"ACCEPTED", "SUCCESSFUL", "DONE"})
_REFUSED_WORDS = frozenset({"REFUSED", "REJECTED", "DENIED", "FAILED"})


class ChangeRecord(BaseModel):
    """One pull & change request and what became of it (no address: where to, only)."""

    change_id: str
    type: str  # CANCEL, ACCELERATE, REDIRECT, ACCELERATE_AND_REDIRECT
    status: ChangeStatus = ChangeStatus.REQUESTED
    requested_at: str
    note: str | None = None  # the operator's words; never sent to D1
    redirected_to: str | None = None  # "city, country" of the new delivery address
    d1_operation_id: str | None = None
    reason: str | None = None  # D1's reason (refusal, acceptance) or why the request failed
    decided_at: str | None = None
    decided_at_status: str | None = None  # the production stage when the center decided


class Applied(StrEnum):
    ADVANCED = "advanced"  # moved the order forward
    RECORDED = "recorded"  # new fact, but stale or unknown: timeline only
    DUPLICATE = "duplicate"
    IGNORED = "ignored"  # not about this order (other operation type we do not track)


class TimelineEntry(BaseModel):
    key: str
    operation: str
    operation_status: str
    production_status: str | None = None
    shipment_status: str | None = None
    shipment_message: str | None = None
    tracking_number: str | None = None
    carrier: str | None = None
    reason: str | None = None
    error_code: str | None = None
    error: str | None = None
    d1_time: str
    source: str
    sort_rank: int
    sort_shipment_rank: int
    # UPDATE_ORDER entries: which pull & change, and the center's answer (ACCEPTED / REFUSED).
    change_type: str | None = None
    change_outcome: str | None = None


class OrderError(BaseModel):
    source: str  # "submit", "notification", "reconciliation"
    error_code: str | None = None
    error: str | None = None
    http_status: int | None = None


class OrderState(BaseModel):
    operation_id: str | None = None
    submitted: bool = False
    production_status: str | None = None
    production_rank: int = 0
    operation_status: str | None = None
    shipment: ShipmentInfo | None = None
    shipment_rank: int = 0
    due_date: str | None = None
    production_site: str | None = None
    outcome: Outcome | None = None
    outcome_reason: str | None = None
    errors: list[OrderError] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    unknown_statuses: list[str] = Field(default_factory=list)
    seen_keys: list[str] = Field(default_factory=list)
    changes: list[ChangeRecord] = Field(default_factory=list)
    timeline_dropped: int = 0
    updates_applied: int = 0
    duplicates_ignored: int = 0
    reconciliations: int = 0

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def shipped(self) -> bool:
        return self.production_rank >= (production_rank(ProductionStatus.CARD_SHIPPED) or 0)

    @property
    def pending_change(self) -> ChangeRecord | None:
        return next((c for c in self.changes if c.status in PENDING_CHANGE), None)

    @property
    def cancel_accepted(self) -> bool:
        return any(c.type == "CANCEL" and c.status == ChangeStatus.ACCEPTED for c in self.changes)

    def apply(
        self,
        op: OperationNotification,
        *,
        source: str,
        delivered_statuses: frozenset[str] = frozenset({"Delivered"}),
        returned_statuses: frozenset[str] = frozenset({"Returned"}),
        produced_is_final: bool = False,
    ) -> Applied:
        """Apply one D1 update. ``produced_is_final``: the card is not shipped (INSTANT, CENTRAL
        without shipment), so CARD_PROD_DONE ends the order as PRODUCED."""
        if op.operation == Operation.UPDATE_ORDER:
            return self._apply_update_order(op, source)
        if op.operation not in (Operation.PRODUCE, Operation.STANDALONE_TRACKING):
            return Applied.IGNORED
        key = _key_digest(op.dedup_key())
        if key in self.seen_keys:
            self.duplicates_ignored += 1
            return Applied.DUPLICATE
        self.seen_keys.append(key)
        self.updates_applied += 1

        status = op.production_status
        rank = production_rank(status)
        ship = op.shipment
        s_rank = shipment_rank(ship.status if ship else None)
        self._add_to_timeline(op, key=key, source=source, rank=rank, s_rank=s_rank)

        if self.operation_id is None:
            self.operation_id = op.operationId
        details = op.details
        if details is not None:
            # Facts that do not regress: keep the first value seen, refresh on progress.
            if details.dueDate and (self.due_date is None or (rank or 0) >= self.production_rank):
                self.due_date = details.dueDate
            if details.productionSite and (self.production_site is None or (rank or 0) >= self.production_rank):
                self.production_site = details.productionSite

        if op.status == OperationStatus.FAILED:
            self._record_failure(op, source)

        if rank is None:
            if status and status not in self.unknown_statuses:
                self.unknown_statuses.append(status)
            return Applied.RECORDED

        advanced = False
        if rank > self.production_rank:
            self.production_status = status
            self.production_rank = rank
            self.operation_status = op.status
            advanced = True
        if ship is not None and rank >= self.production_rank and (
            s_rank > self.shipment_rank or (self.shipment is None)
        ):
            self.shipment = ship
            self.shipment_rank = s_rank
            advanced = True
        elif ship is not None and self.shipment is not None and s_rank == self.shipment_rank:
            # Same carrier step with new details (tracking number, message): keep the latest facts.
            merged = self.shipment.model_copy(update=ship.model_dump(exclude_none=True))
            if merged != self.shipment:
                self.shipment = merged
                advanced = True

        self._settle_outcome(op, delivered_statuses, returned_statuses)
        if (
            produced_is_final
            and self.outcome is None
            and self.production_status == ProductionStatus.CARD_PROD_DONE
        ):
            self.outcome = Outcome.PRODUCED
        return Applied.ADVANCED if advanced else Applied.RECORDED

    def _record_failure(self, op: OperationNotification, source: str) -> None:
        if op.errorCode is None and op.error is None and op.production_status == ProductionStatus.CARD_PROD_CANCELED:
            return  # a cancel the issuer asked for is not an error
        self.errors.append(OrderError(source=source, error_code=op.errorCode, error=op.error))

    # ------------------------------------------------------------ pull & change

    def _apply_update_order(self, op: OperationNotification, source: str) -> Applied:
        key = _key_digest(op.dedup_key())
        if key in self.seen_keys:
            self.duplicates_ignored += 1
            return Applied.DUPLICATE
        self.seen_keys.append(key)
        self.updates_applied += 1
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
        rank = (stage_rank if stage_rank is not None else self.production_rank) + 1
        entry = TimelineEntry(
            key=key,
            operation=op.operation,
            operation_status=op.status,
            reason=reason,
            error_code=op.errorCode,
            error=op.error,
            d1_time=op.endTime or op.startTime,
            source=source,
            sort_rank=rank,
            sort_shipment_rank=0,
            change_type=kind,
            change_outcome=outcome.value if outcome else None,
        )
        self.timeline.append(entry)
        self.timeline.sort(key=lambda e: (e.sort_rank, e.sort_shipment_rank, e.d1_time, e.key))
        if outcome is None:
            return Applied.RECORDED
        record = self._change_for(op.operationId, kind)
        if record is None:  # a change the product did not ask for (another channel): keep it visible
            record = ChangeRecord(
                change_id=f"d1-{op.operationId}",
                type=kind or "UNKNOWN",
                status=ChangeStatus.SENT,
                requested_at=op.startTime,
                d1_operation_id=op.operationId,
            )
            self.changes.append(record)
        if record.status in PENDING_CHANGE:
            record.status = outcome
            record.reason = reason
            record.decided_at = op.endTime or op.startTime
            record.decided_at_status = stage
            if record.d1_operation_id is None:
                record.d1_operation_id = op.operationId
        return Applied.RECORDED

    def _change_for(self, d1_operation_id: str, kind: str | None) -> ChangeRecord | None:
        """The change this outcome is about: by D1's operationId, else the pending one (the
        outcome can arrive before the 202 that carries the operationId is processed)."""
        for record in self.changes:
            if record.d1_operation_id == d1_operation_id:
                return record
        pending = [c for c in self.changes if c.status in PENDING_CHANGE and c.d1_operation_id is None]
        same_type = [c for c in pending if kind is None or c.type == kind]
        candidates = same_type or pending
        return candidates[0] if candidates else None

    def _settle_outcome(
        self, op: OperationNotification, delivered: frozenset[str], returned: frozenset[str]
    ) -> None:
        if self.outcome is not None:
            return
        status = self.production_status
        reason = op.details.reason if op.details else None
        if status in TERMINAL_PRODUCTION_STATUSES:
            self.outcome = {
                ProductionStatus.DATA_EXCEPTION: Outcome.DATA_EXCEPTION,
                ProductionStatus.CARD_PROD_EXCEPTION: Outcome.PRODUCTION_EXCEPTION,
                ProductionStatus.CARD_PROD_CANCELED: Outcome.CANCELED,
                ProductionStatus.CARD_RETURNED: Outcome.RETURNED,
            }[ProductionStatus(status)]
            self.outcome_reason = reason or op.error
            return
        ship_status = self.shipment.status if self.shipment else None
        if ship_status in delivered:
            self.outcome = Outcome.DELIVERED
        elif ship_status in returned:
            self.outcome = Outcome.RETURNED
            self.outcome_reason = self.shipment.message if self.shipment else None
        elif op.status == OperationStatus.FAILED and op.production_status == status:
            self.outcome = Outcome.FAILED
            self.outcome_reason = op.error or op.errorCode or reason

    def _add_to_timeline(
        self, op: OperationNotification, *, key: str, source: str, rank: int | None, s_rank: int
    ) -> None:
        ship = op.shipment
        entry = TimelineEntry(
            key=key,
            operation=op.operation,
            operation_status=op.status,
            production_status=op.production_status,
            shipment_status=ship.status if ship else None,
            shipment_message=ship.message if ship else None,
            tracking_number=ship.trackingNumber if ship else None,
            carrier=ship.carrier if ship else None,
            reason=op.details.reason if op.details else None,
            error_code=op.errorCode,
            error=op.error,
            d1_time=op.endTime or op.startTime,
            source=source,
            sort_rank=rank if rank is not None else UNKNOWN_RANK,
            sort_shipment_rank=s_rank,
        )
        self.timeline.append(entry)
        self.timeline.sort(key=lambda e: (e.sort_rank, e.sort_shipment_rank, e.d1_time, e.key))
        if len(self.timeline) > MAX_TIMELINE:
            shipped_rank = production_rank(ProductionStatus.CARD_SHIPPED)
            carrier = [i for i, e in enumerate(self.timeline) if e.sort_rank == shipped_rank and e.shipment_status]
            drop = carrier[0] if len(carrier) > 1 else 0
            del self.timeline[drop]
            self.timeline_dropped += 1

    def end(self, outcome: Outcome, reason: str | None = None) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.outcome_reason = reason
