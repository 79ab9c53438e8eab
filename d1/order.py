"""The card order request (``POST .../physicalCards/{cardId}/operations:production``).

Two shapes share the same building blocks:

* :class:`CardOrder` is what an issuer service hands to the product: the D1 body plus
  the path identifiers (``issuerId``, ``cardId``) and the *clear* sensitive card data.
* :class:`D1OrderRequest` is what D1 receives: the same body with the sensitive data
  replaced by ``encryptedData`` (a compact JWE).

Every model hides input values in its validation errors (``hide_input_in_errors``) so
that a bad PAN never ends up in an exception message or a log line. Request models keep
unknown fields (``extra="allow"``) and pass them through, as D1's compatibility policy
asks; the starter's validation reports them separately as probable typos.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ISSUER_ID_PATTERN = r"^.{10}$"
CARD_ID_PATTERN = r"^[A-Za-z0-9_-]{1,48}$"
CONSUMER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CARD_PRODUCT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,48}$"
# issuerRequestId's format is not documented; we use the D1 identifier alphabet (it is
# also our idempotency key and part of the Temporal workflow id).
ISSUER_REQUEST_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
COUNTRY_CODE_PATTERN = r"^[A-Z]{2}$"
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"

DistributionChannel = Literal["THALES", "CENTRAL", "INSTANT"]
Issuance = Literal["CREATION", "RENEWAL", "REPLACEMENT"]
ShipmentType = Literal["INDIVIDUAL", "BULK"]


class _D1Model(BaseModel):
    model_config = ConfigDict(extra="allow", hide_input_in_errors=True, populate_by_name=True)


class Address(_D1Model):
    title: str | None = Field(default=None, max_length=16)
    firstName: str | None = Field(default=None, max_length=64)
    lastName: str | None = Field(default=None, max_length=64)
    companyName: str | None = Field(default=None, max_length=128)
    line1: str = Field(min_length=1, max_length=128)
    line2: str | None = Field(default=None, max_length=128)
    line3: str | None = Field(default=None, max_length=128)
    city: str = Field(min_length=1, max_length=64)
    state: str | None = Field(default=None, max_length=64)
    zipCode: str = Field(min_length=1, max_length=16)
    countryCode: str = Field(pattern=COUNTRY_CODE_PATTERN, description="ISO 3166-1 alpha-2")
    mobilePhoneNumber: str | None = Field(default=None, pattern=E164_PATTERN, description="E.164")


class Services(_D1Model):
    issuance: Issuance
    priority: str | None = None
    delivery: str = "NO_SHIPMENT"
    cardCarrier: str = "NO_CARRIER"
    packaging: str = "NO_PACK"
    pinMailer: bool = False
    alphaCard: bool = False


class PaymentApplication(_D1Model):
    config: str | None = None
    odaKeyIndex: str | None = None
    derivationKeyIndex: str | None = None
    cvKeyIndex: str | None = None
    pvKeyIndex: str | None = None


class Shipment(_D1Model):
    type: ShipmentType = "INDIVIDUAL"
    deliveryAddress: Address
    individualAddress: Address | None = None
    groupId: str | None = Field(default=None, min_length=1, max_length=64)
    orderId: str | None = Field(default=None, min_length=1, max_length=64)


class CardDesign(_D1Model):
    cardImage: str | None = None
    images: list[str] | None = None
    customLines: list[str] | None = None
    memberId: str | None = None


class CardCarrierConfig(_D1Model):
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}$", description="ISO 639-1")
    images: list[str] | None = None
    customLines: list[str] | None = None


class PackagingConfig(_D1Model):
    inserts: list[str] | None = None


class TrackData(_D1Model):
    """Magnetic-stripe tracks: they contain the PAN, so they are card data."""

    track1: str | None = Field(default=None, max_length=79)
    track2: str | None = Field(default=None, max_length=40)
    track3: str | None = Field(default=None, max_length=107)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


class CardData(BaseModel):
    """Plaintext of ``encryptedData``. Never logged; masked in every view."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    pan: str = Field(pattern=r"^[0-9]{10,19}$")
    exp: str = Field(pattern=r"^[0-9]{4}$")
    name: str | None = Field(default=None, max_length=26)
    secondName: str | None = Field(default=None, max_length=26)
    encodedName: str | None = Field(default=None, max_length=26)
    cvv1: str | None = Field(default=None, pattern=r"^[0-9]{3}$")
    cvv2: str | None = Field(default=None, pattern=r"^[0-9]{3,4}$")
    pvv: str | None = Field(default=None, pattern=r"^[0-9]{4}$")
    panSequenceNumber: str | None = Field(default=None, pattern=r"^[0-9]{2}$")
    effectiveDate: str | None = Field(default=None, pattern=r"^[0-9]{4}$")
    paymentAccountReference: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]{29}$")

    @field_validator("pan")
    @classmethod
    def _luhn(cls, value: str) -> str:
        if not luhn_valid(value):
            raise ValueError("PAN fails the Luhn check")
        return value

    def __repr__(self) -> str:  # never print card data, even by accident
        return "CardData(<redacted>)"

    __str__ = __repr__


class _OrderBody(_D1Model):
    """Fields common to what the issuer submits and what D1 receives."""

    distributionChannel: DistributionChannel = "THALES"
    cardProductId: str = Field(pattern=CARD_PRODUCT_ID_PATTERN)
    consumerId: str | None = Field(default=None, pattern=CONSUMER_ID_PATTERN)
    issuerRequestId: str = Field(pattern=ISSUER_REQUEST_ID_PATTERN)
    services: Services
    paymentApplication: PaymentApplication
    cardDesign: CardDesign | None = None
    cardCarrierConfig: CardCarrierConfig | None = None
    packagingConfig: PackagingConfig | None = None
    shipment: Shipment | None = None
    persoStation: str | None = None

    @model_validator(mode="after")
    def _channel_rules(self) -> _OrderBody:
        if self.distributionChannel == "INSTANT":
            if not self.persoStation:
                raise ValueError("persoStation is required when distributionChannel is INSTANT")
            if self.shipment is not None:
                raise ValueError("an INSTANT order is handed over in branch and takes no shipment")
        elif self.distributionChannel == "THALES" and self.shipment is None:
            raise ValueError("shipment is required when distributionChannel is THALES")
        return self


class CardOrder(_OrderBody):
    """An order as an issuer service submits it (clear card data, path ids in the body)."""

    issuerId: str = Field(min_length=10, max_length=10)
    cardId: str = Field(pattern=CARD_ID_PATTERN)
    cardData: CardData
    trackData: TrackData | None = None

    def d1_body(self, encrypted_data: str) -> dict[str, object]:
        """The JSON body D1 receives: no path ids, no clear card data."""
        body = self.model_dump(
            mode="json", exclude_none=True, exclude={"issuerId", "cardId", "cardData", "trackData"}
        )
        body["encryptedData"] = encrypted_data
        return body

    def sensitive_plaintext(self) -> dict[str, object]:
        """What goes inside the JWE. Track data travels encrypted too (its placement is
        undocumented by D1; sending it encrypted is the safe reading)."""
        plain: dict[str, object] = self.cardData.model_dump(exclude_none=True)
        if self.trackData is not None:
            plain["trackData"] = self.trackData.model_dump(exclude_none=True)
        return plain


class D1OrderRequest(_OrderBody):
    """The order body as D1 receives it."""

    encryptedData: str = Field(min_length=1, max_length=8192)
    trackData: TrackData | None = None


class OrderAccepted(BaseModel):
    model_config = ConfigDict(extra="allow")

    operationId: str | None = None
