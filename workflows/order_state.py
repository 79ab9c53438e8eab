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

    def apply(
        self,
        op: OperationNotification,
        *,
        source: str,
        delivered_statuses: frozenset[str] = frozenset({"Delivered"}),
        returned_statuses: frozenset[str] = frozenset({"Returned"}),
    ) -> Applied:
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
        return Applied.ADVANCED if advanced else Applied.RECORDED

    def _record_failure(self, op: OperationNotification, source: str) -> None:
        self.errors.append(OrderError(source=source, error_code=op.errorCode, error=op.error))

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
