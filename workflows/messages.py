"""Types that cross the workflow boundary: workflow input/view, activity inputs/outputs.

They contain no card data except :attr:`CardOrderInput.order` (the issuer's order, which
holds the clear card data until it is encrypted and is protected at rest by the payload
codec). Views and continue-as-new inputs never carry it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import AliasChoices, BaseModel, Field

from d1.order import Address, AnyCardOrder, CardOrder
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
    # Retrying a pull & change call stops after this long; the change is then FAILED (a
    # change is urgent by nature: once the card ships it is pointless).
    change_give_up_after: timedelta = timedelta(minutes=10)


class OrderRef(BaseModel):
    """Identifiers of an order and its masked card: safe to show anywhere."""

    issuer_id: str
    card_id: str
    issuer_request_id: str
    consumer_id: str | None = None
    card_product_id: str | None = None
    masked_pan: str | None = None
    # None: not shipped (INSTANT, or CENTRAL without shipment): production is the end.
    shipment_type: str | None = None
    group_id: str | None = None
    bulk_order_id: str | None = None
    distribution_channel: str = "THALES"


class CardOrderInput(BaseModel):
    ref: OrderRef
    timing: OrderTiming = Field(default_factory=OrderTiming)
    # Present on the first run only; continue-as-new drops it. Discriminated by distributionChannel.
    order: AnyCardOrder | None = None
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
    # The base class suffices: the activity only encrypts cardData and trackData.
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


class ChangeRequest(BaseModel):
    """Input of the pull & change updates (``cancel``, ``accelerate``, ``redirect``,
    ``accelerate_and_redirect``): the new address for the redirects, an operator note.
    Also accepts D1's spelling (``newDeliveryAddress``), ``deliveryAddress`` and ``reason``."""

    new_delivery_address: Address | None = Field(
        default=None,
        validation_alias=AliasChoices("new_delivery_address", "newDeliveryAddress", "deliveryAddress"),
    )
    # Why the change was asked (recorded in the order's view; never sent to D1).
    note: str | None = Field(default=None, max_length=200, validation_alias=AliasChoices("note", "reason"))


class PullAndChangeInput(BaseModel):
    issuer_id: str
    card_id: str
    issuer_request_id: str
    change_id: str
    # The D1 body: {"type": ..., "newDeliveryAddress": {...}}.
    body: dict[str, Any]


class PullAndChangeResult(BaseModel):
    operation_id: str | None = None


# Error types raised by activities (ApplicationError.type), matched by the workflow.
D1_REJECTED = "D1Rejected"
D1_UNAVAILABLE = "D1Unavailable"
# Error types of pull & change updates, matched by the starter API.
CHANGE_REJECTED = "ChangeRejected"  # the update validator (or handler) refused it: D1 not called
CHANGE_FAILED = "ChangeFailed"  # D1 refused the request (4xx) or stayed unreachable
