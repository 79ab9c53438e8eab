"""The event catalogue (docs/events.md): what the bank's systems are told about each card.

Pure models (no Temporal, no I/O): the order workflow builds events with them inside the
sandbox, the hub stores them, the delivery activity signs their JSON. An event names the
card by its ids and masked PAN only: never card data, a name or an address (a redirect
says "city, country" at most).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The version of the catalogue an event was written for. A new optional member keeps it;
# a removed or renamed member or a changed meaning makes a new version (docs/events.md).
CATALOGUE_VERSION = "2026-12-07"


class EventType(StrEnum):
    ORDER_CREATED = "order.created"
    ORDER_SUBMITTED = "order.submitted"  # D1 took the order: operation id
    PRODUCTION_STATUS_CHANGED = "order.production_status_changed"  # each D1 status, reason, due date
    SHIPPED = "order.shipped"  # carrier, tracking number and URL where known
    SHIPMENT_UPDATED = "order.shipment_updated"  # a carrier scan, exception, end-user message
    DELIVERED = "order.delivered"
    RETURNED = "order.returned"
    NOT_DELIVERED = "order.not_delivered"  # shipped, then carrier silence (SHIPPED, LOST_IN_TRANSIT)
    PRODUCED = "order.produced"  # no shipment (INSTANT): production is the end
    FAILED = "order.failed"  # DATA_EXCEPTION, PRODUCTION_EXCEPTION, FAILED, SUBMIT_FAILED
    REJECTED = "order.rejected"  # D1 refused the order: its code and the field in error
    CRYPTO_REJECTED = "order.crypto_rejected"  # D1 could not decrypt the card data
    CANCELED = "order.canceled"
    CHANGE_REQUESTED = "order.change_requested"  # pull & change asked (an address change: awaiting approval)
    CHANGE_APPROVED = "order.change_approved"  # four eyes: a second operator approved the address change
    CHANGE_SENT = "order.change_sent"  # D1 took the request; the center decides later
    CHANGE_DECIDED = "order.change_decided"  # ACCEPTED, REFUSED, FAILED, EXPIRED (unapproved) or REJECTED
    # D1's Card Activation (receiver/activation.py), from the order while it runs, else from the
    # card's activation record (workflows/activation.py); before delivery: flagged.
    CARD_ACTIVATED = "order.card_activated"
    CARD_ACTIVATED_BEFORE_DELIVERY = "order.card_activated_before_delivery"
    # The tracking hub (a card personalized elsewhere): the same milestones, another subject.
    TRACKING_STARTED = "tracking.started"
    TRACKING_PRODUCTION_STATUS_CHANGED = "tracking.production_status_changed"
    TRACKING_SHIPPED = "tracking.shipped"
    TRACKING_SHIPMENT_UPDATED = "tracking.shipment_updated"
    TRACKING_DELIVERED = "tracking.delivered"
    TRACKING_RETURNED = "tracking.returned"
    TRACKING_NOT_DELIVERED = "tracking.not_delivered"
    TRACKING_ENDED = "tracking.ended"  # any other end (refused, failed, production done)


ALL_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)

_SHIPMENT = ("carrier", "tracking_number", "tracking_url", "shipment_status", "message")
_OUTCOME = ("outcome", "reason", "production_status", "shipment_status", "error_code", "error")
_CHANGE = ("change_id", "change_type", "redirected_to")
_PRODUCTION = ("production_status", "operation_status", "reason", "error_code", "error", "due_date", "production_site")
# The members of ``data`` each type may carry (all optional; tests/events/test_from_order.py
# holds the events to it, events/asyncapi.py publishes it).
_ORDER_DATA: dict[EventType, tuple[str, ...]] = {
    EventType.ORDER_CREATED: ("card_product_id", "shipment_type", "group_id"),
    EventType.ORDER_SUBMITTED: ("operation_id",),
    EventType.PRODUCTION_STATUS_CHANGED: _PRODUCTION,
    EventType.SHIPPED: _SHIPMENT,
    EventType.SHIPMENT_UPDATED: _SHIPMENT,
    EventType.CHANGE_REQUESTED: (*_CHANGE, "requested_by", "awaiting_approval", "approval_expires_at"),
    EventType.CHANGE_APPROVED: (*_CHANGE, "requested_by", "approved_by"),
    EventType.CHANGE_SENT: (*_CHANGE, "operation_id"),
    EventType.CHANGE_DECIDED: (*_CHANGE, "decision", "reason", "at_status"),
    EventType.CARD_ACTIVATED: ("activation", "order_stage"),
    EventType.CARD_ACTIVATED_BEFORE_DELIVERY: ("activation", "order_stage"),
}
DATA_MEMBERS: dict[str, tuple[str, ...]] = {
    t.value: _ORDER_DATA.get(t, _OUTCOME) for t in EventType if t.value.startswith("order.")
}
DATA_MEMBERS |= {
    t.value: ("tracking_type", "carrier", *_PRODUCTION, *_SHIPMENT, "outcome")
    for t in EventType
    if t.value.startswith("tracking.")
}


class Subject(BaseModel):
    """Which card an event is about: identifiers and the masked PAN, nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = "order"  # "order" or "tracking"
    workflow_id: str
    issuer_id: str
    card_id: str
    issuer_request_id: str | None = None
    masked_pan: str | None = None
    tracking_type: str | None = None


class Event(BaseModel):
    """One event, as signed and delivered (the webhook body) and as the feed returns it."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    id: str  # stable: the same milestone always has the same id (de-duplicate on it)
    type: str
    version: str = CATALOGUE_VERSION
    occurred_at: str  # when it happened: D1's time where D1 gave one (ISO 8601)
    emitted_at: str  # when the product noticed it (workflow time, ISO 8601)
    issuer_id: str
    card_id: str
    issuer_request_id: str | None = None
    workflow_id: str
    masked_pan: str | None = None
    # Per issuer, gapless, assigned by the issuer's event hub: the feed's order and cursor.
    sequence: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    def body(self) -> str:
        """The exact JSON text that is signed and posted."""
        return self.model_dump_json(exclude_none=True)


def tracking_type_of(order_type: EventType) -> EventType:
    """The tracking hub's spelling of an order milestone (same suffix)."""
    return EventType("tracking." + order_type.value.split(".", 1)[1])
