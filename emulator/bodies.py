"""The bodies as D1 reads them: the single card order, the batch "Order cards" API and pull & change.

D1 is a party of its own with its own reading of the schema, which differs from what the
product demands of its callers (:mod:`d1.order`):

* ``distributionChannel`` is required (it is the discriminator and the first name of the
  THALES schema's ``required`` list, although a guide says THALES is the default);
* ``issuerRequestId`` is *conditional* for D1 (the card-order guide), so D1 accepts an order
  without one (the product always sends one: it is its idempotency key);
* ``consumerId`` is a required input of the single order (the guide's "Required D1 API
  inputs: issuerId, cardId, consumerId"), but not of a batch item, whose schema requires
  only ``cardId, distributionChannel, services, encryptedData, paymentApplication``.

Both shapes follow the channels' rule of the single order's ``oneOf``
(:data:`d1.channels.CHANNEL_RULES`; for the batch item this is our reading,
:mod:`d1.assumptions`). The building blocks (services, shipment, addresses, card data...) are
those of :mod:`d1.order`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from d1.assumptions import DOCUMENTED_BATCH_MAX_CARDS
from d1.channels import channel_model, channel_models
from d1.issues import Issue, IssueKind, issues_from_validation_error
from d1.order import (
    Address,
    CardCarrierConfig,
    CardDesign,
    PackagingConfig,
    PaymentApplication,
    Services,
    Shipment,
    TrackData,
    _D1Model,
)
from d1.patterns import (
    CARD_ID_PATTERN,
    CARD_PRODUCT_ID_PATTERN,
    CONSUMER_ID_PATTERN,
    ISSUER_REQUEST_ID_PATTERN,
    PERSO_STATION_PATTERN,
    REDIRECTING_TYPES,
    CardState,
    DistributionChannel,
    PullAndChangeType,
)


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


class D1OrderBody(D1CardFields):
    """``POST .../physicalCards/{cardId}/operations:production`` (base class: no channel rules)."""

    consumerId: str = Field(pattern=CONSUMER_ID_PATTERN)
    cardProductId: str = Field(pattern=CARD_PRODUCT_ID_PATTERN)


class D1BatchCard(D1CardFields):
    """One ``cardItem`` of the "Order cards" body (base class: no channel rules)."""

    cardId: str = Field(pattern=CARD_ID_PATTERN)


_ORDER_MODELS = channel_models(D1OrderBody)
_BATCH_MODELS = channel_models(D1BatchCard)


def order_body_model(raw: Mapping[str, Any]) -> type[D1OrderBody]:
    """The class for this single-order body; no default channel (D1's schema requires it)."""
    return channel_model(_ORDER_MODELS, D1OrderBody, raw.get("distributionChannel"))


def batch_card_model(raw: Mapping[str, Any]) -> type[D1BatchCard]:
    return channel_model(_BATCH_MODELS, D1BatchCard, raw.get("distributionChannel"))


class CardsRequest(BaseModel):
    """The "Order cards" envelope: ``cards`` only (``additionalProperties: false``), 1-1000 objects."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    cards: list[dict[str, Any]] = Field(min_length=1, max_length=DOCUMENTED_BATCH_MAX_CARDS)


def cards_request_issues(raw: Any, max_cards: int = DOCUMENTED_BATCH_MAX_CARDS) -> list[Issue]:
    """Problems of the batch envelope (each one refuses the whole request); empty = well-formed."""
    try:
        request = CardsRequest.model_validate(raw)
    except ValidationError as exc:
        return issues_from_validation_error(exc)
    if len(request.cards) > max_cards:
        return [Issue(("cards",), f"must have at most {max_cards} item(s) (this program's batch size)")]
    return []


class PullAndChangeRequest(_D1Model):
    """Body of the pull & change call (docs/d1/card-order.md §14; the payload shape is a GUESS:
    the documented inputs ``type`` and ``newDeliveryAddress``)."""

    type: PullAndChangeType
    newDeliveryAddress: Address | None = None


def pull_and_change_issues(body: Mapping[str, Any]) -> list[Issue]:
    """Cross-field rule: a redirect needs ``newDeliveryAddress``; other types take none."""
    kind = body.get("type")
    has_address = body.get("newDeliveryAddress") is not None
    if kind in REDIRECTING_TYPES and not has_address:
        return [Issue(("newDeliveryAddress",), f"is required for {kind}", IssueKind.MISSING)]
    if kind in ("CANCEL", "ACCELERATE") and has_address:
        return [
            Issue(
                ("newDeliveryAddress",),
                f"only applies to REDIRECT and ACCELERATE_AND_REDIRECT, not {kind}",
                IssueKind.NOT_ALLOWED,
            )
        ]
    return []
