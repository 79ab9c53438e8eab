"""The card order bodies as D1 reads them: the single order and the batch "Order cards" API.

D1 is a party of its own with its own reading of the schema, which differs from what the
product demands of its callers (:mod:`d1.order`):

* ``distributionChannel`` is required (it is the discriminator and the first name of the
  THALES schema's ``required`` list, although a guide says THALES is the default);
* ``issuerRequestId`` is *conditional* for D1 (the card-order guide), so D1 accepts an order
  without one (the product always sends one: it is its idempotency key);
* ``consumerId`` is a required input of the single order (the guide's "Required D1 API
  inputs: issuerId, cardId, consumerId"), but not of a batch item, whose schema requires
  only ``cardId, distributionChannel, services, encryptedData, paymentApplication``.

Each shape has one class per channel, as the single order's ``oneOf``: THALES ships (a
``shipment``), INSTANT names a ``persoStation`` and takes no shipment, CENTRAL may ship.
The batch item follows the same channel rules (our reading, :mod:`d1.assumptions`). The
building blocks (services, shipment, addresses, card data...) are those of :mod:`d1.order`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from d1.assumptions import DOCUMENTED_BATCH_MAX_CARDS
from d1.issues import Issue, issues_from_validation_error
from d1.order import (
    CARD_ID_PATTERN,
    CARD_PRODUCT_ID_PATTERN,
    CHANNELS,
    CONSUMER_ID_PATTERN,
    ISSUER_REQUEST_ID_PATTERN,
    PERSO_STATION_PATTERN,
    CardCarrierConfig,
    CardDesign,
    CardState,
    DistributionChannel,
    PackagingConfig,
    PaymentApplication,
    Services,
    Shipment,
    TrackData,
    _D1Model,
)

# Error type of a well-formed member that this channel does not allow (a D1 reader maps it
# to FIELD_INVALID_VALUE rather than to a format error).
NOT_ALLOWED_ERROR = "value_not_allowed"


def not_allowed(reason: str) -> PydanticCustomError:
    return PydanticCustomError(NOT_ALLOWED_ERROR, reason)


def _reject_perso_station(value: object) -> object:
    if value is not None:
        raise not_allowed("only applies to INSTANT orders (distributionChannel INSTANT)")
    return value


def _reject_shipment(value: object) -> object:
    if value is not None:
        raise not_allowed("an INSTANT card is handed over at the personalization station and takes no shipment")
    return value


class D1CardFields(_D1Model):
    """Members of one card's order as D1 receives them, on every channel and both APIs."""

    distributionChannel: DistributionChannel
    consumerId: str | None = Field(default=None, pattern=CONSUMER_ID_PATTERN)
    cardProductId: str | None = Field(default=None, pattern=CARD_PRODUCT_ID_PATTERN)
    # Conditional for D1: without it, D1 correlates the order by cardId.
    issuerRequestId: str | None = Field(default=None, pattern=ISSUER_REQUEST_ID_PATTERN)
    services: Services
    encryptedData: str = Field(min_length=1, max_length=8192)
    paymentApplication: PaymentApplication
    # D1 does not say whether trackData travels encrypted (D1Interface.trackDataPlacement).
    trackData: TrackData | None = None
    cardDesign: CardDesign | None = None
    cardCarrierConfig: CardCarrierConfig | None = None
    packagingConfig: PackagingConfig | None = None
    shipment: Shipment | None = None
    persoStation: str | None = Field(default=None, pattern=PERSO_STATION_PATTERN)
    state: CardState | None = None
    oldCardId: str | None = Field(default=None, pattern=CARD_ID_PATTERN)


# ------------------------------------------------------------------ the single order


class D1OrderBody(D1CardFields):
    """``POST .../physicalCards/{cardId}/operations:production`` (base class: no channel rules)."""

    consumerId: str = Field(pattern=CONSUMER_ID_PATTERN)
    cardProductId: str = Field(pattern=CARD_PRODUCT_ID_PATTERN)


class ThalesOrderBody(D1OrderBody):
    distributionChannel: Literal["THALES"]
    shipment: Shipment
    _no_station = field_validator("persoStation", mode="before")(_reject_perso_station)


class CentralOrderBody(D1OrderBody):
    distributionChannel: Literal["CENTRAL"]
    _no_station = field_validator("persoStation", mode="before")(_reject_perso_station)


class InstantOrderBody(D1OrderBody):
    distributionChannel: Literal["INSTANT"]
    persoStation: str = Field(pattern=PERSO_STATION_PATTERN)
    _no_shipment = field_validator("shipment", mode="before")(_reject_shipment)


# ------------------------------------------------------------------ the batch API


class D1BatchCard(D1CardFields):
    """One ``cardItem`` of the "Order cards" body (base class: no channel rules)."""

    cardId: str = Field(pattern=CARD_ID_PATTERN)


class ThalesBatchCard(D1BatchCard):
    distributionChannel: Literal["THALES"]
    shipment: Shipment
    _no_station = field_validator("persoStation", mode="before")(_reject_perso_station)


class CentralBatchCard(D1BatchCard):
    distributionChannel: Literal["CENTRAL"]
    _no_station = field_validator("persoStation", mode="before")(_reject_perso_station)


class InstantBatchCard(D1BatchCard):
    distributionChannel: Literal["INSTANT"]
    persoStation: str = Field(pattern=PERSO_STATION_PATTERN)
    _no_shipment = field_validator("shipment", mode="before")(_reject_shipment)


class CardsRequest(BaseModel):
    """The "Order cards" envelope: ``cards`` only (``additionalProperties: false``), 1-1000 objects."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    cards: list[dict[str, Any]] = Field(min_length=1, max_length=DOCUMENTED_BATCH_MAX_CARDS)


_ORDER_MODELS: dict[str, type[D1OrderBody]] = {
    "THALES": ThalesOrderBody,
    "CENTRAL": CentralOrderBody,
    "INSTANT": InstantOrderBody,
}
_BATCH_MODELS: dict[str, type[D1BatchCard]] = {
    "THALES": ThalesBatchCard,
    "CENTRAL": CentralBatchCard,
    "INSTANT": InstantBatchCard,
}


def _channel(raw: Mapping[str, Any]) -> str | None:
    """The channel named by the body; no default (D1's schema requires the member)."""
    value = raw.get("distributionChannel")
    return value if isinstance(value, str) and value in CHANNELS else None


def order_body_model(raw: Mapping[str, Any]) -> type[D1OrderBody]:
    """The class for this single-order body; a missing or unknown channel gets the base class,
    which reports it."""
    channel = _channel(raw)
    return _ORDER_MODELS[channel] if channel else D1OrderBody


def batch_card_model(raw: Mapping[str, Any]) -> type[D1BatchCard]:
    channel = _channel(raw)
    return _BATCH_MODELS[channel] if channel else D1BatchCard


def cards_request_issues(raw: Any, max_cards: int = DOCUMENTED_BATCH_MAX_CARDS) -> list[Issue]:
    """Problems of the batch envelope (each one refuses the whole request); empty = well-formed."""
    try:
        request = CardsRequest.model_validate(raw)
    except ValidationError as exc:
        return issues_from_validation_error(exc)
    if len(request.cards) > max_cards:
        return [Issue(("cards",), f"must have at most {max_cards} item(s) (this program's batch size)")]
    return []


__all__ = [
    "CardsRequest",
    "CentralBatchCard",
    "CentralOrderBody",
    "D1BatchCard",
    "D1CardFields",
    "D1OrderBody",
    "InstantBatchCard",
    "InstantOrderBody",
    "ThalesBatchCard",
    "ThalesOrderBody",
    "batch_card_model",
    "cards_request_issues",
    "order_body_model",
]
