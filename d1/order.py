"""The card order request (``POST .../physicalCards/{cardId}/operations:production``) as models.

:class:`CardOrder` is what an issuer service hands to the product (docs/order-format.md):
the D1 body, the path identifiers and the *clear* ``cardData`` / ``trackData``, which
:meth:`CardOrder.d1_body` replaces by ``encryptedData``, a compact JWE of :class:`CardData`.
Each channel's class is derived by :mod:`d1.channels`. Every model hides input values in
its validation errors (``hide_input_in_errors``) so a bad PAN never reaches an exception or
a log. Body models keep unknown members (``extra="allow"``), as D1's compatibility policy
asks; card data models forbid them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator

from d1.card_data import luhn_valid
from d1.channels import channel_model, channel_models
from d1.iso_codes import ISO_639_1, ISO_3166_ALPHA2
from d1.patterns import (
    CARD_ID_PATTERN,
    CARD_PRODUCT_ID_PATTERN,
    CONSUMER_ID_PATTERN,
    COUNTRY_CODE_PATTERN,
    CVV1_PATTERN,
    CVV2_PATTERN,
    DEFAULT_CARD_STATE,
    DEFAULT_CHANNEL,
    E164_PATTERN,
    ENCODED_NAME_PATTERN,
    EXP_PATTERN,
    GROUP_ID_PATTERN,
    ISSUER_REQUEST_ID_PATTERN,
    KEY_INDEX_PATTERN,
    LANGUAGE_PATTERN,
    MEMBER_ID_PATTERN,
    NAME_PATTERN,
    NO_CARRIER,
    NO_PACK,
    NO_SHIPMENT,
    ONBOARDING_ID_PATTERN,
    PAN_PATTERN,
    PAR_PATTERN,
    PERSO_STATION_PATTERN,
    PSN_PATTERN,
    PVV_PATTERN,
    TEXT_PATTERN,
    TRACK_LAYOUTS,
    ZIP_CODE_PATTERN,
    CardState,
    DistributionChannel,
    Issuance,
    ShipmentType,
)

OnboardingId = Annotated[str, Field(pattern=ONBOARDING_ID_PATTERN)]
TextLine = Annotated[str, Field(min_length=1, max_length=128, pattern=TEXT_PATTERN)]


class _D1Model(BaseModel):
    model_config = ConfigDict(extra="allow", hide_input_in_errors=True, populate_by_name=True)


class _CardDataModel(BaseModel):
    """Card data: never extra members (they would travel encrypted and unnoticed), never printed."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    def __repr__(self) -> str:  # never print card data, even by accident
        return f"{type(self).__name__}(<redacted>)"

    __str__ = __repr__


# ------------------------------------------------------------------------ building blocks


class Address(_D1Model):
    """Delivery / card-holder address (shipment, carrier and pull & change pages). Lengths: GUESS."""

    title: str | None = Field(default=None, min_length=1, max_length=16, pattern=TEXT_PATTERN)
    firstName: str | None = Field(default=None, min_length=1, max_length=64, pattern=TEXT_PATTERN)
    lastName: str | None = Field(default=None, min_length=1, max_length=64, pattern=TEXT_PATTERN)
    companyName: str | None = Field(default=None, min_length=1, max_length=128, pattern=TEXT_PATTERN)
    line1: str = Field(min_length=1, max_length=128, pattern=TEXT_PATTERN)
    line2: str | None = Field(default=None, min_length=1, max_length=128, pattern=TEXT_PATTERN)
    line3: str | None = Field(default=None, min_length=1, max_length=128, pattern=TEXT_PATTERN)
    city: str = Field(min_length=1, max_length=64, pattern=TEXT_PATTERN)
    state: str | None = Field(default=None, min_length=1, max_length=64, pattern=TEXT_PATTERN)
    zipCode: str = Field(pattern=ZIP_CODE_PATTERN)
    countryCode: str = Field(pattern=COUNTRY_CODE_PATTERN, description="ISO 3166-1 alpha-2")
    mobilePhoneNumber: str | None = Field(default=None, pattern=E164_PATTERN, description="E.164")

    @field_validator("countryCode")
    @classmethod
    def _iso_country(cls, value: str) -> str:
        if value not in ISO_3166_ALPHA2:
            raise ValueError("is not an assigned ISO 3166-1 alpha-2 country code")
        return value


class Services(_D1Model):
    issuance: Issuance
    priority: str | None = Field(default=None, pattern=ONBOARDING_ID_PATTERN)
    delivery: str = Field(default=NO_SHIPMENT, pattern=ONBOARDING_ID_PATTERN)
    cardCarrier: str = Field(default=NO_CARRIER, pattern=ONBOARDING_ID_PATTERN)
    packaging: str = Field(default=NO_PACK, pattern=ONBOARDING_ID_PATTERN)
    pinMailer: StrictBool = False
    alphaCard: StrictBool = False


class PaymentApplication(_D1Model):
    """Chip Model 1 inputs (the recommended model; Model 2's field names are not documented)."""

    config: str = Field(pattern=ONBOARDING_ID_PATTERN)
    odaKeyIndex: str = Field(pattern=KEY_INDEX_PATTERN)
    derivationKeyIndex: str = Field(pattern=KEY_INDEX_PATTERN)
    cvKeyIndex: str | None = Field(default=None, pattern=KEY_INDEX_PATTERN)
    pvKeyIndex: str | None = Field(default=None, pattern=KEY_INDEX_PATTERN)


class Shipment(_D1Model):
    type: ShipmentType = "INDIVIDUAL"
    deliveryAddress: Address
    individualAddress: Address | None = None
    groupId: str | None = Field(default=None, pattern=GROUP_ID_PATTERN)
    orderId: str | None = Field(default=None, pattern=GROUP_ID_PATTERN)


class CardDesign(_D1Model):
    cardImage: str | None = Field(default=None, pattern=ONBOARDING_ID_PATTERN)
    images: list[OnboardingId] | None = None
    customLines: list[TextLine] | None = None
    memberId: str | None = Field(default=None, pattern=MEMBER_ID_PATTERN)


class CardCarrierConfig(_D1Model):
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN, description="ISO 639-1")
    images: list[OnboardingId] | None = None
    customLines: list[TextLine] | None = None

    @field_validator("language")
    @classmethod
    def _iso_language(cls, value: str | None) -> str | None:
        if value is not None and value not in ISO_639_1:
            raise ValueError("is not an ISO 639-1 language code")
        return value


class PackagingConfig(_D1Model):
    inserts: list[OnboardingId] | None = None


class TrackData(_CardDataModel):
    """Magnetic-stripe tracks used verbatim by D1. They contain the PAN, so they are card data
    and travel inside ``encryptedData`` (their placement is undocumented; encrypted is safe)."""

    track1: str | None = Field(default=None, min_length=1, max_length=79)
    track2: str | None = Field(default=None, min_length=1, max_length=40)
    track3: str | None = Field(default=None, min_length=1, max_length=107)

    @field_validator("track1", "track2", "track3")
    @classmethod
    def _layout(cls, value: str | None, info: ValidationInfo) -> str | None:
        regex, rule = TRACK_LAYOUTS[info.field_name or ""]
        if value is not None and not regex.match(value):
            raise ValueError(rule)
        return value


class CardData(_CardDataModel):
    """Plaintext of ``encryptedData`` (without ``trackData``). Never logged; masked in every view.

    Formats of cvv1/pvv/panSequenceNumber/effectiveDate/paymentAccountReference are inferred
    (docs/d1/encryption.md §4); ``effectiveDate`` uses the program's expiry format (GUESS).
    """

    pan: str = Field(pattern=PAN_PATTERN)
    exp: str = Field(pattern=EXP_PATTERN)
    name: str | None = Field(default=None, min_length=1, max_length=64, pattern=NAME_PATTERN)
    secondName: str | None = Field(default=None, min_length=1, max_length=64, pattern=NAME_PATTERN)
    encodedName: str | None = Field(default=None, min_length=2, max_length=26, pattern=ENCODED_NAME_PATTERN)
    cvv1: str | None = Field(default=None, pattern=CVV1_PATTERN)
    cvv2: str | None = Field(default=None, pattern=CVV2_PATTERN)
    pvv: str | None = Field(default=None, pattern=PVV_PATTERN)
    panSequenceNumber: str | None = Field(default=None, pattern=PSN_PATTERN)
    effectiveDate: str | None = Field(default=None, pattern=EXP_PATTERN)
    paymentAccountReference: str | None = Field(default=None, pattern=PAR_PATTERN)

    @field_validator("pan")
    @classmethod
    def _luhn(cls, value: str) -> str:
        if not luhn_valid(value):
            raise ValueError("fails the Luhn check digit")
        return value


# ------------------------------------------------------------------ issuer's order (clear)


class CardOrder(_D1Model):
    """An order as an issuer service submits it (clear card data, path ids in the body).

    :func:`parse_card_order` (or the starter's ``validate_order``) picks the channel's class;
    this base class accepts every channel without the channel rules.
    """

    distributionChannel: DistributionChannel = DEFAULT_CHANNEL
    cardProductId: str = Field(pattern=CARD_PRODUCT_ID_PATTERN)
    # Required D1 input of the single card order (the card-order guide: "issuerId, cardId,
    # consumerId"); the batch API's card item may omit it (emulator/bodies.py).
    consumerId: str = Field(pattern=CONSUMER_ID_PATTERN)
    # Conditional in D1; required here: it is the product's idempotency key.
    issuerRequestId: str = Field(pattern=ISSUER_REQUEST_ID_PATTERN)
    services: Services
    paymentApplication: PaymentApplication
    cardDesign: CardDesign | None = None
    cardCarrierConfig: CardCarrierConfig | None = None
    packagingConfig: PackagingConfig | None = None
    shipment: Shipment | None = None
    persoStation: str | None = Field(default=None, pattern=PERSO_STATION_PATTERN)
    # Deprecated inputs: accepted and passed through only when the issuer sent them. ``state``
    # defaults to ACTIVE on D1's side (see :attr:`effective_state`); ``None`` here means "not sent",
    # which survives serialization (a default value would not).
    state: CardState | None = Field(default=None, json_schema_extra={"deprecated": True, "default": "ACTIVE"})
    oldCardId: str | None = Field(default=None, pattern=CARD_ID_PATTERN, json_schema_extra={"deprecated": True})
    issuerId: str = Field(min_length=10, max_length=10)
    cardId: str = Field(pattern=CARD_ID_PATTERN)
    cardData: CardData
    trackData: TrackData | None = None

    @property
    def effective_state(self) -> str:
        return self.state or DEFAULT_CARD_STATE

    @property
    def ships(self) -> bool:
        """Whether the card is shipped (as opposed to handed over at a station or kept by a partner)."""
        return self.shipment is not None

    def d1_body(self, encrypted_data: str, *, tracks_in_clear: bool = False) -> dict[str, Any]:
        """The JSON body D1 receives: absent members dropped, unknown ones passed through, no path
        ids, no clear card data (``trackData`` stays a top-level member only when the program
        places tracks outside the JWE)."""
        body: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        for member in ("issuerId", "cardId", "cardData", "trackData"):
            body.pop(member, None)
        if tracks_in_clear and self.trackData is not None:
            body["trackData"] = self.trackData.model_dump(exclude_none=True)
        body["encryptedData"] = encrypted_data
        return body

    def sensitive_plaintext(self, *, include_tracks: bool = True) -> dict[str, object]:
        """What goes inside the JWE: card data, and track data (which contains the PAN)."""
        plain: dict[str, object] = self.cardData.model_dump(exclude_none=True)
        if include_tracks and self.trackData is not None:
            plain["trackData"] = self.trackData.model_dump(exclude_none=True)
        return plain


CARD_ORDER_MODELS = channel_models(CardOrder)

if TYPE_CHECKING:
    AnyCardOrder = CardOrder
else:  # the channels' classes, for typed fields (a union built at run time: no `X | Y` spelling)
    AnyCardOrder = Annotated[Union[tuple(CARD_ORDER_MODELS.values())], Field(discriminator="distributionChannel")]  # noqa: UP007


def issuer_order_model(raw: Mapping[str, Any]) -> type[CardOrder]:
    """The class for this raw order (``THALES`` when the channel is absent)."""
    return channel_model(CARD_ORDER_MODELS, CardOrder, raw.get("distributionChannel", DEFAULT_CHANNEL))


def parse_card_order(raw: Mapping[str, Any]) -> CardOrder:
    """Structural validation of an issuer's order with its channel's class (raises ValidationError).
    Cross-field and program rules are separate: see :func:`d1.validation.check_order`."""
    return issuer_order_model(raw).model_validate(raw)


class OrderAccepted(BaseModel):
    model_config = ConfigDict(extra="allow")

    operationId: str | None = None
