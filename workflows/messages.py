"""Types that cross the workflow boundary: workflow input/view, activity inputs/outputs.

They contain no card data except :attr:`CardOrderInput.order` (the issuer's order, which
holds the clear card data until it is encrypted and is protected at rest by the payload
codec). Views and continue-as-new inputs never carry it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from d1.order import CardOrder
from workflows.order_state import OrderState


def workflow_id_for(issuer_id: str, issuer_request_id: str) -> str:
    """The idempotency key (issuerId + issuerRequestId) *is* the workflow id."""
    return f"card-order:{issuer_id}:{issuer_request_id}"


class OrderTiming(BaseModel):
    reconcile_after: timedelta = timedelta(hours=24)
    quiet_after_shipped: timedelta = timedelta(days=30)
    close_grace: timedelta = timedelta(minutes=10)
    delivered_shipment_statuses: list[str] = Field(default_factory=lambda: ["Delivered"])
    returned_shipment_statuses: list[str] = Field(default_factory=lambda: ["Returned"])
    # Retrying D1 submission stops after this long; the order then ends as SUBMIT_FAILED.
    submit_give_up_after: timedelta = timedelta(hours=24)


class OrderRef(BaseModel):
    """Identifiers of an order and its masked card: safe to show anywhere."""

    issuer_id: str
    card_id: str
    issuer_request_id: str
    consumer_id: str | None = None
    card_product_id: str | None = None
    masked_pan: str | None = None
    shipment_type: str | None = None
    group_id: str | None = None
    bulk_order_id: str | None = None


class CardOrderInput(BaseModel):
    ref: OrderRef
    timing: OrderTiming = Field(default_factory=OrderTiming)
    # Present on the first run only; continue-as-new drops it.
    order: CardOrder | None = None
    # Carried across continue-as-new (with the clocks of the wait loop).
    state: OrderState | None = None
    last_progress_at: datetime | None = None
    shipment_changed_at: datetime | None = None


class OrderView(BaseModel):
    """What the query returns and the workflow completes with; card data masked."""

    workflow_id: str
    ref: OrderRef
    state: OrderState


class EncryptInput(BaseModel):
    order: CardOrder


class SubmitInput(BaseModel):
    issuer_id: str
    card_id: str
    issuer_request_id: str
    body: dict[str, Any]


class SubmitResult(BaseModel):
    operation_id: str


class StatusInput(BaseModel):
    issuer_id: str
    card_id: str
    issuer_request_id: str


# Error types raised by activities (ApplicationError.type), matched by the workflow.
D1_REJECTED = "D1Rejected"
D1_UNAVAILABLE = "D1Unavailable"
