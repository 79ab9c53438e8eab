"""Notification body, operation object and the productionStatus response.

Parsing is tolerant by design (D1 API change policy): unknown fields are kept
(``extra="allow"``) and enumerations are plain strings, so a new ``details.status`` or a
new ``operation`` is carried through instead of rejected. Only the fields the schema marks
required are enforced.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CARD_ID_PATTERN = r"^[A-Za-z0-9_-]{1,48}$"
# Bounds on what one update may carry. D1 documents the identifier formats
# (docs/d1/notifications.md); the other lengths are generous caps of ours, so that a
# malformed or hostile body cannot put unbounded strings into an order's history.
Short = Annotated[str, Field(max_length=64)]
Text = Annotated[str, Field(max_length=1000)]
Url = Annotated[str, Field(max_length=2048)]


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, hide_input_in_errors=True)


class ShipmentInfo(_Tolerant):
    carrier: Short | None = None
    trackingNumber: Short | None = None
    status: Short | None = None
    message: Text | None = None
    trackingUrl: Url | None = None


class OperationDetails(_Tolerant):
    status: Short | None = None
    reason: Text | None = None
    dueDate: Short | None = None
    productionSite: Short | None = None
    shipment: ShipmentInfo | None = None
    inputFileName: Text | None = None
    issuerRequestId: Short | None = None
    # STANDALONE_TRACKING (tracking hub): PRODUCTION | SHIPMENT | RETURN.
    trackingType: Short | None = None
    # Deprecated by D1; parsed so that it is not mistaken for an unknown field, never used.
    consumerId: Short | None = None


class OperationNotification(_Tolerant):
    """One update about one card (``CardStatus-operation-notification``)."""

    operationId: str = Field(pattern=ID_PATTERN)
    operation: str = Field(min_length=1, max_length=64)
    status: str = Field(min_length=1, max_length=64)
    startTime: str = Field(min_length=1, max_length=64)
    cardId: str = Field(pattern=CARD_ID_PATTERN)
    endTime: Short | None = None
    issuerRequestId: Short | None = None
    inputFileName: Text | None = None
    errorCode: Short | None = None
    error: Text | None = None
    details: OperationDetails | None = None

    @property
    def request_id(self) -> str | None:
        """D1 documents ``issuerRequestId`` at both levels; read both."""
        return self.issuerRequestId or (self.details.issuerRequestId if self.details else None)

    @property
    def production_status(self) -> str | None:
        return self.details.status if self.details else None

    @property
    def shipment(self) -> ShipmentInfo | None:
        return self.details.shipment if self.details else None

    def dedup_key(self) -> str:
        """Identity of one update: operationId alone is reused across steps (docs/d1/notifications.md §4, §8)."""
        ship = self.shipment or ShipmentInfo()
        parts = (self.production_status, ship.status, ship.trackingNumber, ship.message)
        return "|".join([self.operationId, self.operation, self.status, *(p or "" for p in parts)])


class NotificationBody(_Tolerant):
    operations: list[OperationNotification] = Field(min_length=1)


class ProductionStatusResponse(_Tolerant):
    """``GET .../productionStatus``.

    The wrapper is undocumented (D1 only says it carries the notifications' operation
    object): accept ``{"operations": [...]}`` or a bare operation object, and expose the
    operations either way.
    """

    operations: list[OperationNotification] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_operation(cls, data: Any) -> Any:
        if isinstance(data, dict) and "operations" not in data and "operationId" in data:
            return {"operations": [data]}
        return data

    def latest(self) -> OperationNotification | None:
        return self.operations[-1] if self.operations else None
