"""The API's request and response bodies (the OpenAPI document is generated from them). Card
data appears in requests only; every response shows the masked PAN at most."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.card_order import ChangeRecord, OrderRef, OrderView

SAMPLE_ORDER: dict[str, Any] = {
    "issuerId": "TESTISS001",
    "cardId": "card-demo-0001",
    "issuerRequestId": "req-demo-0001",
    "consumerId": "cust-000123",
    "cardProductId": "DEMO_VISA_DEBIT_01",
    "services": {"issuance": "CREATION", "priority": "STANDARD"},
    "cardData": {"pan": "4111111111111111", "exp": "2906", "name": "JANE SAMPLE", "cvv2": "123"},
    "paymentApplication": {"config": "DEMO_VIS163_CONTACTLESS"},
}


class Model(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True)


class CardOrderRequest(Model):
    """An order in the D1 JSON format of `samples/order.json` (docs/order-format.md): card data in
    clear as `cardData` (encrypted here for D1) or as `encryptedData`, a compact JWE the issuer's
    HSM made for D1's current key (`ECDH-ES`, `A256GCM`, D1's `kid`). Every D1 member of the order
    is accepted; the validation reports every problem at once."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [SAMPLE_ORDER]})

    issuerRequestId: str = Field(description="The idempotency key: the same id again is the same order")
    cardId: str
    consumerId: str
    cardProductId: str
    issuerId: str | None = Field(default=None, description="If given, the path's issuerId")
    cardData: dict[str, Any] | None = Field(default=None, description="Clear card data (PAN, exp, name, CVV ...)")
    encryptedData: str | None = Field(default=None, description="Card data already encrypted for D1 (compact JWE)")


class Caller(Model):
    clientId: str
    person: str | None = None


class Links(Model):
    self: str
    timeline: str | None = None


_ACCEPTED_EXAMPLE: dict[str, Any] = {
    "id": "card-order:TESTISS001:req-demo-0001",
    "issuerId": "TESTISS001",
    "issuerRequestId": "req-demo-0001",
    "cardId": "card-demo-0001",
    "consumerId": "cust-000123",
    "cardProductId": "DEMO_VISA_DEBIT_01",
    "maskedPan": "4111********1111",
    "distributionChannel": "THALES",
    "shipmentType": "INDIVIDUAL",
    "requestedBy": {"clientId": "core-banking", "person": "alice"},
    "links": {
        "self": "/v1/issuers/TESTISS001/card-orders/req-demo-0001",
        "timeline": "/v1/issuers/TESTISS001/card-orders/req-demo-0001/timeline",
    },
}


class CardOrderAccepted(Model):
    """The answer to an order: the same on a retry (200) as on creation (201)."""

    model_config = ConfigDict(hide_input_in_errors=True, json_schema_extra={"examples": [_ACCEPTED_EXAMPLE]})

    id: str = Field(description="The order's id (its workflow id)")
    issuerId: str
    issuerRequestId: str
    cardId: str
    consumerId: str | None = None
    cardProductId: str | None = None
    maskedPan: str | None = Field(default=None, description="First 6 and last 4; absent for issuer-encrypted data")
    distributionChannel: str
    shipmentType: str | None = None
    requestedBy: Caller | None = None
    links: Links


class Shipment(Model):
    status: str | None = None
    carrier: str | None = None
    trackingNumber: str | None = None


class Change(Model):
    """One pull & change request and what became of it."""

    model_config = ConfigDict(
        hide_input_in_errors=True,
        json_schema_extra={
            "examples": [
                {
                    "changeId": "chg-1",
                    "type": "REDIRECT",
                    "status": "SENT",
                    "requestedAt": "2026-12-07T08:00:00Z",
                    "note": "customer moved",
                    "redirectedTo": "Boston, US",
                    "requestedBy": {"clientId": "core-banking", "person": "alice"},
                }
            ]
        },
    )

    changeId: str
    type: str
    status: str
    requestedAt: str
    note: str | None = None
    redirectedTo: str | None = None
    reason: str | None = None
    decidedAt: str | None = None
    requestedBy: Caller | None = None

    @classmethod
    def of(cls, record: ChangeRecord, requested_by: Caller | None = None) -> Change:
        return cls(
            changeId=record.change_id,
            type=record.type,
            status=record.status.value,
            requestedAt=record.requested_at,
            note=record.note,
            redirectedTo=record.redirected_to,
            reason=record.reason,
            decidedAt=record.decided_at,
            requestedBy=requested_by,
        )


class OrderProblem(Model):
    source: str
    errorCode: str | None = None
    error: str | None = None
    httpStatus: int | None = None


class CardOrderView(Model):
    """An order as it stands (masked)."""

    id: str
    issuerId: str
    issuerRequestId: str
    cardId: str
    consumerId: str | None = None
    cardProductId: str | None = None
    maskedPan: str | None = None
    distributionChannel: str
    shipmentType: str | None = None
    productionStatus: str | None = None
    operationStatus: str | None = None
    shipment: Shipment | None = None
    dueDate: str | None = None
    outcome: str | None = Field(default=None, description="Set once the order ended (DELIVERED, REJECTED ...)")
    outcomeReason: str | None = None
    errors: list[OrderProblem] = Field(default_factory=list)
    changes: list[Change] = Field(default_factory=list)
    requestedBy: Caller | None = None
    links: Links

    @classmethod
    def of(cls, view: OrderView, links: Links, requested_by: Caller | None) -> CardOrderView:
        ref, state = view.ref, view.state
        ship = state.shipment
        return cls(
            id=view.workflow_id,
            **ref_members(ref),
            productionStatus=state.production_status,
            operationStatus=state.operation_status,
            shipment=Shipment(status=ship.status, carrier=ship.carrier, trackingNumber=ship.trackingNumber)
            if ship
            else None,
            dueDate=state.due_date,
            outcome=state.outcome.value if state.outcome else None,
            outcomeReason=state.outcome_reason,
            errors=[
                OrderProblem(source=e.source, errorCode=e.error_code, error=e.error, httpStatus=e.http_status)
                for e in state.errors
            ],
            changes=[Change.of(c) for c in state.changes],
            requestedBy=requested_by,
            links=links,
        )


class CardOrderItem(Model):
    """An order in a list (from Temporal's visibility: no query per order)."""

    id: str
    issuerRequestId: str | None = None
    cardId: str | None = None
    status: str = Field(description="Running, Completed, ... (the order's workflow)")
    productionStatus: str | None = None
    shipmentStatus: str | None = None
    outcome: str | None = None
    createdAt: datetime | None = None
    closedAt: datetime | None = None
    links: Links


class CardOrderPage(Model):
    data: list[CardOrderItem]
    nextCursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; absent at the end")


class TimelineLine(Model):
    at: datetime | None = None
    source: Literal["D1", "order"]
    text: str


class Timeline(Model):
    id: str
    lines: list[TimelineLine]


class ChangeBody(Model):
    """A pull & change request; `newDeliveryAddress` for the redirects (a D1 address)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    note: str | None = Field(default=None, max_length=200, description="Why (kept with the order, never sent to D1)")
    newDeliveryAddress: dict[str, Any] | None = None


class BatchCardResult(Model):
    index: int = Field(description="The order's position in the batch (0-based)")
    issuerRequestId: str | None = None
    result: Literal["created", "existing", "invalid", "refused", "failed", "pending"]
    status: str | None = Field(default=None, description="The order's workflow status, on a later read")
    outcome: str | None = None
    detail: str | None = None
    errors: list[dict[str, str]] | None = None
    links: Links | None = None


class Batch(Model):
    id: str = Field(description="Opaque; names the batch's orders (the service keeps no state)")
    issuerId: str
    cards: int
    accepted: int
    rejected: int
    d1Batches: list[str] = Field(default_factory=list, description="D1 batch calls made, when through D1's batch API")
    results: list[BatchCardResult]
    links: Links


class TrackingRequest(Model):
    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    cardId: str = Field(max_length=48)
    trackingType: Literal["PRODUCTION", "SHIPMENT", "RETURN"]


class Tracking(Model):
    id: str
    issuerId: str
    cardId: str
    trackingType: str
    status: str | None = None
    created: bool | None = None
    view: dict[str, Any] | None = None
    links: Links


class Health(Model):
    status: Literal["ok", "unavailable"]
    detail: str | None = None


def ref_members(ref: OrderRef) -> dict[str, Any]:
    """An order's identifiers and masked card, as every answer about an order names them."""
    return {
        "issuerId": ref.issuer_id,
        "issuerRequestId": ref.issuer_request_id,
        "cardId": ref.card_id,
        "consumerId": ref.consumer_id,
        "cardProductId": ref.card_product_id,
        "maskedPan": ref.masked_pan,
        "distributionChannel": ref.distribution_channel,
        "shipmentType": ref.shipment_type,
    }
