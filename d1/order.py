"""The card order request (``POST .../physicalCards/{cardId}/operations:production``).

Two shapes share the same building blocks:

* :class:`CardOrder` is what an issuer service hands to the product: the D1 body plus
  the path identifiers (``issuerId``, ``cardId``) and the *clear* sensitive card data
  (``cardData``, ``trackData``).
* :class:`D1OrderRequest` is what D1 receives: the same body with the sensitive data
  replaced by ``encryptedData`` (a compact JWE whose plaintext is :class:`CardData`,
  with ``trackData`` inside it).

The body is a ``oneOf`` discriminated by ``distributionChannel`` (docs/d1/card-order.md §2): each
shape has one subclass per channel (``THALES`` needs a shipment, ``INSTANT`` needs a
``persoStation`` and takes no shipment, ``CENTRAL`` may ship or not). :data:`AnyCardOrder`
and :data:`AnyD1OrderRequest` are the discriminated unions for typed fields;
:func:`issuer_order_model` / :func:`d1_order_model` pick the class for raw input (a
missing ``distributionChannel`` means ``THALES``, the guide's default).

Rules that involve more than one field (groupId only on BULK, a shipping method when
shipping, track data matching the PAN...) are plain functions over the raw JSON
(:func:`body_issues`, :func:`card_issues`) so that a reader can report *every* problem at
once even when other fields are invalid; program-specific rules (known identifiers,
allowed countries, printable names) live in :mod:`d1.program`.

Every model hides input values in its validation errors (``hide_input_in_errors``) so a
bad PAN never ends up in an exception message or a log line. Body models keep unknown
members (``extra="allow"``) and pass them through, as D1's compatibility policy asks;
the starter reports them as probable typos. Card data models forbid unknown members.

Where D1 documents a rule only by example or not at all, the choice made here is marked
GUESS (see docs/d1/card-order.md and docs/d1/assumptions.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from d1.card_data import luhn_valid
from d1.iso_codes import ISO_639_1, ISO_3166_ALPHA2
from d1.issues import Issue, IssueKind, Path, describe_pattern

# ------------------------------------------------------------------ identifier patterns

ISSUER_ID_PATTERN = r"^.{10}$"
CARD_ID_PATTERN = describe_pattern(r"^[A-Za-z0-9_-]{1,48}$", "must be 1-48 characters: letters, digits, '_' or '-'")
CONSUMER_ID_PATTERN = describe_pattern(r"^[A-Za-z0-9_-]{1,64}$", "must be 1-64 characters: letters, digits, '_' or '-'")
CARD_PRODUCT_ID_PATTERN = CARD_ID_PATTERN
# issuerRequestId's format is not documented; we use the D1 identifier alphabet plus '.'
# and ':' (it is also our idempotency key and part of the Temporal workflow id).
ISSUER_REQUEST_ID_PATTERN = describe_pattern(
    r"^[A-Za-z0-9_.:-]{1,64}$", "must be 1-64 characters: letters, digits, '_', '.', ':' or '-'"
)
# Identifiers configured at onboarding (delivery methods, carrier templates, packaging,
# inserts, image ids, payment-application configs, priorities): GUESS of their alphabet.
ONBOARDING_ID_PATTERN = describe_pattern(
    r"^[A-Za-z0-9_.-]{1,64}$", "must be an identifier of 1-64 characters: letters, digits, '_', '.' or '-'"
)
GROUP_ID_PATTERN = describe_pattern(
    r"^[A-Za-z0-9_.:-]{1,64}$", "must be 1-64 characters: letters, digits, '_', '.', ':' or '-'"
)
PERSO_STATION_PATTERN = ONBOARDING_ID_PATTERN
# Key indexes are one byte in EMV key management: GUESS two hex digits, as in every example ("01").
KEY_INDEX_PATTERN = describe_pattern(r"^[0-9A-Fa-f]{2}$", "must be a key index of two hexadecimal digits, e.g. 01")
COUNTRY_CODE_PATTERN = describe_pattern(
    r"^[A-Z]{2}$", "must be an ISO 3166-1 alpha-2 country code in capitals, e.g. US"
)
LANGUAGE_PATTERN = describe_pattern(r"^[a-z]{2}$", "must be an ISO 639-1 language code in lower case, e.g. en")
E164_PATTERN = describe_pattern(
    r"^\+[1-9][0-9]{1,14}$",
    "must be an international number in E.164 form: '+', country code, number, e.g. +12125550100",
)
ZIP_CODE_PATTERN = describe_pattern(
    r"^[A-Za-z0-9][A-Za-z0-9 -]{0,15}$", "must be a postal code of 1-16 letters, digits, spaces or hyphens"
)
# Printable text without control characters (address lines, custom lines).
TEXT_PATTERN = describe_pattern(r"^[^\x00-\x1f\x7f]+$", "must be printable text (no control characters)")
MEMBER_ID_PATTERN = describe_pattern(
    r"^[A-Za-z0-9 ._/+$%-]{1,32}$",
    "must be 1-32 characters printable as a barcode: letters, digits, space or . _ / + $ % -",
)

# ------------------------------------------------------------------ card data patterns

PAN_PATTERN = describe_pattern(r"^[0-9]{10,19}$", "must be 10-19 digits")
EXP_PATTERN = describe_pattern(r"^[0-9]{4}$", "must be 4 digits (YYMM or MMYY, per the program)")
CVV1_PATTERN = describe_pattern(r"^[0-9]{3}$", "must be 3 digits")
CVV2_PATTERN = describe_pattern(r"^[0-9]{3,4}$", "must be 3 or 4 digits")
PVV_PATTERN = describe_pattern(r"^[0-9]{4}$", "must be 4 digits")
PSN_PATTERN = describe_pattern(r"^[0-9]{2}$", "must be 2 digits, e.g. 00")
PAR_PATTERN = describe_pattern(r"^[A-Za-z0-9]{29}$", "must be a payment account reference of 29 letters or digits")
# Name as written on the card; the printable alphabet and length are program rules.
NAME_PATTERN = describe_pattern(r"^[^\x00-\x1f\x7f]+$", "must be printable text (no control characters)")
# ISO/IEC 7813 track 1 name field: SURNAME/GIVEN NAMES (2-26 characters, capitals).
ENCODED_NAME_PATTERN = describe_pattern(
    r"^[A-Z0-9 .'-]+/[A-Z0-9 .'-]*$",
    "must be an ISO/IEC 7813 track 1 name: capitals, 'SURNAME/GIVEN NAMES', e.g. SAMPLE/JANE",
)

# ISO/IEC 7813 magnetic tracks, with or without start/end sentinels (and without LRC).
# Track 1 (format B): B PAN ^ NAME ^ YYMM SSS discretionary. Track 2: PAN = YYMM SSS discretionary.
# Track 3 (ISO 4909): digits and '=' separators.
_T1_CHARS = r"[ !\"#$&'()*+,./0-9:;<=>@A-Z\[\\\]_-]"
TRACK1_RE = re.compile(
    rf"^%?B(?P<pan>[0-9]{{1,19}})\^(?P<name>{_T1_CHARS}{{2,26}})\^(?P<exp>[0-9]{{4}})[0-9]{{3}}"
    rf"{_T1_CHARS}*\??$"
)
TRACK2_RE = re.compile(r"^;?(?P<pan>[0-9]{1,19})[=D](?P<exp>[0-9]{4})[0-9]{3}[0-9]*\??$")
TRACK3_RE = re.compile(r"^;?[0-9]{2}[0-9]{1,19}=[0-9=]*\??$")
TRACK1_RULE = (
    "must be an ISO/IEC 7813 track 1 (format B): 'B', PAN, '^', name (2-26 capitals), '^', "
    "YYMM expiry, 3-digit service code, discretionary data; at most 79 characters"
)
TRACK2_RULE = (
    "must be an ISO/IEC 7813 track 2: PAN, '=', YYMM expiry, 3-digit service code, discretionary digits; "
    "at most 40 characters"
)
TRACK3_RULE = (
    "must be an ISO 4909 track 3: digits and '=' separators (format code, PAN, '=', ...); at most 107 characters"
)

NO_SHIPMENT = "NO_SHIPMENT"
NO_CARRIER = "NO_CARRIER"
NO_PACK = "NO_PACK"

DistributionChannel = Literal["THALES", "CENTRAL", "INSTANT"]
CHANNELS: tuple[str, ...] = ("THALES", "CENTRAL", "INSTANT")
DEFAULT_CHANNEL = "THALES"
Issuance = Literal["CREATION", "RENEWAL", "REPLACEMENT"]
ShipmentType = Literal["INDIVIDUAL", "BULK"]
# Deprecated ``state``: only ACTIVE is documented (its default; docs/d1/card-order.md §17); INACTIVE is our reading.
CardState = Literal["ACTIVE", "INACTIVE"]
DEFAULT_CARD_STATE = "ACTIVE"
# Members accepted, passed through, and reported as deprecated.
DEPRECATED_MEMBERS: dict[str, str] = {
    "state": "is deprecated by D1 (cards are created ACTIVE); it is passed through but may stop working",
    "oldCardId": "is deprecated by D1; it is passed through but may stop working",
}

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

    @field_validator("track1")
    @classmethod
    def _track1(cls, value: str | None) -> str | None:
        if value is not None and not TRACK1_RE.match(value):
            raise ValueError(TRACK1_RULE)
        return value

    @field_validator("track2")
    @classmethod
    def _track2(cls, value: str | None) -> str | None:
        if value is not None and not TRACK2_RE.match(value):
            raise ValueError(TRACK2_RULE)
        return value

    @field_validator("track3")
    @classmethod
    def _track3(cls, value: str | None) -> str | None:
        if value is not None and not TRACK3_RE.match(value):
            raise ValueError(TRACK3_RULE)
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


def _reject_perso_station(value: object) -> object:
    if value is not None:
        raise ValueError("only applies to INSTANT orders (distributionChannel INSTANT)")
    return value


def _reject_shipment(value: object) -> object:
    if value is not None:
        raise ValueError("an INSTANT card is handed over at the personalization station and takes no shipment")
    return value


class _OrderBody(_D1Model):
    """Members common to what the issuer submits and what D1 receives, on every channel."""

    distributionChannel: DistributionChannel = "THALES"
    cardProductId: str = Field(pattern=CARD_PRODUCT_ID_PATTERN)
    # Required D1 input of the single card order (the card-order guide: "issuerId, cardId,
    # consumerId"); the batch API's card item may omit it (d1/inbound.py).
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

    def d1_members(self) -> dict[str, Any]:
        """The members D1 receives: absent ones (``None``) dropped, unknown ones passed through."""
        body: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        return body

    @property
    def effective_state(self) -> str:
        return self.state or DEFAULT_CARD_STATE

    @property
    def ships(self) -> bool:
        """Whether the card is shipped (as opposed to handed over at a station or kept by a partner)."""
        return self.shipment is not None


# ------------------------------------------------------------------ issuer's order (clear)


class CardOrder(_OrderBody):
    """An order as an issuer service submits it (clear card data, path ids in the body).

    Use :func:`issuer_order_model` (or the starter's ``validate_order``) to pick the
    channel's class; this base class accepts every channel without the channel rules.
    """

    issuerId: str = Field(min_length=10, max_length=10)
    cardId: str = Field(pattern=CARD_ID_PATTERN)
    cardData: CardData
    trackData: TrackData | None = None

    def d1_body(self, encrypted_data: str, *, tracks_in_clear: bool = False) -> dict[str, Any]:
        """The JSON body D1 receives: no path ids, no clear card data (``trackData`` stays
        a top-level member only when the program places tracks outside the JWE)."""
        body = self.d1_members()
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


class ThalesCardOrder(CardOrder):
    distributionChannel: Literal["THALES"] = "THALES"
    shipment: Shipment
    _no_station = field_validator("persoStation", mode="before")(_reject_perso_station)


class CentralCardOrder(CardOrder):
    distributionChannel: Literal["CENTRAL"]
    _no_station = field_validator("persoStation", mode="before")(_reject_perso_station)


class InstantCardOrder(CardOrder):
    distributionChannel: Literal["INSTANT"]
    persoStation: str = Field(pattern=PERSO_STATION_PATTERN)
    _no_shipment = field_validator("shipment", mode="before")(_reject_shipment)


AnyCardOrder = Annotated[
    ThalesCardOrder | CentralCardOrder | InstantCardOrder, Field(discriminator="distributionChannel")
]

# ------------------------------------------------------------------ D1's request (encrypted)


class D1OrderRequest(_OrderBody):
    """The order body as D1 receives it (base class: every channel, no channel rules)."""

    encryptedData: str = Field(min_length=1, max_length=8192)
    # D1 does not say whether trackData travels encrypted: accepted here too (docs/d1/encryption.md §4).
    trackData: TrackData | None = None


class ThalesD1Order(D1OrderRequest):
    distributionChannel: Literal["THALES"] = "THALES"
    shipment: Shipment
    _no_station = field_validator("persoStation", mode="before")(_reject_perso_station)


class CentralD1Order(D1OrderRequest):
    distributionChannel: Literal["CENTRAL"]
    _no_station = field_validator("persoStation", mode="before")(_reject_perso_station)


class InstantD1Order(D1OrderRequest):
    distributionChannel: Literal["INSTANT"]
    persoStation: str = Field(pattern=PERSO_STATION_PATTERN)
    _no_shipment = field_validator("shipment", mode="before")(_reject_shipment)


AnyD1OrderRequest = Annotated[
    ThalesD1Order | CentralD1Order | InstantD1Order, Field(discriminator="distributionChannel")
]

_ISSUER_MODELS: dict[str, type[CardOrder]] = {
    "THALES": ThalesCardOrder,
    "CENTRAL": CentralCardOrder,
    "INSTANT": InstantCardOrder,
}
_D1_MODELS: dict[str, type[D1OrderRequest]] = {
    "THALES": ThalesD1Order,
    "CENTRAL": CentralD1Order,
    "INSTANT": InstantD1Order,
}


def channel_of(raw: Mapping[str, Any]) -> str | None:
    """The order's channel (``THALES`` when absent), or ``None`` when the value is not a channel."""
    value = raw.get("distributionChannel", DEFAULT_CHANNEL)
    return value if isinstance(value, str) and value in CHANNELS else None


def issuer_order_model(raw: Mapping[str, Any]) -> type[CardOrder]:
    """The class for this raw order; an invalid channel gets the base class (which reports it)."""
    channel = channel_of(raw)
    return _ISSUER_MODELS[channel] if channel else CardOrder


def d1_order_model(raw: Mapping[str, Any]) -> type[D1OrderRequest]:
    channel = channel_of(raw)
    return _D1_MODELS[channel] if channel else D1OrderRequest


def as_channel_order(order: CardOrder) -> ThalesCardOrder | CentralCardOrder | InstantCardOrder:
    """The order as its channel's class (what :data:`AnyCardOrder` fields hold)."""
    if isinstance(order, ThalesCardOrder | CentralCardOrder | InstantCardOrder):
        return order
    parsed = issuer_order_model(order.model_dump()).model_validate(order.model_dump())
    assert isinstance(parsed, ThalesCardOrder | CentralCardOrder | InstantCardOrder)
    return parsed


def parse_card_order(raw: Mapping[str, Any]) -> CardOrder:
    """Structural validation of an issuer's order with its channel's class (raises ValidationError).
    Cross-field and program rules are separate: see the starter's ``validate_order``."""
    return issuer_order_model(raw).model_validate(raw)


class OrderAccepted(BaseModel):
    model_config = ConfigDict(extra="allow")

    operationId: str | None = None


# ----------------------------------------------------------------------- pull & change

PullAndChangeType = Literal["CANCEL", "ACCELERATE", "REDIRECT", "ACCELERATE_AND_REDIRECT"]
PULL_AND_CHANGE_TYPES: tuple[str, ...] = ("CANCEL", "ACCELERATE", "REDIRECT", "ACCELERATE_AND_REDIRECT")
REDIRECTING_TYPES: frozenset[str] = frozenset({"REDIRECT", "ACCELERATE_AND_REDIRECT"})


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


# ------------------------------------------------------------------ cross-field rules


def _obj(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def body_issues(body: Mapping[str, Any], card: Mapping[str, Any] | None = None, *, card_path: Path = ()) -> list[Issue]:
    """Rules across members of the order body (same member names in both shapes).

    ``card`` is the card data (clear ``cardData`` or the decrypted plaintext, at
    ``card_path``) when the caller has it; rules that need it are skipped otherwise.
    Values of the wrong type are skipped here: the structural validation reports them.
    """
    issues: list[Issue] = []
    channel = channel_of(body)
    services = _obj(body.get("services"))
    shipment = _obj(body.get("shipment"))
    delivery = _str(services.get("delivery", NO_SHIPMENT)) if services is not None else None
    carrier = _str(services.get("cardCarrier", NO_CARRIER)) if services is not None else None

    if shipment is not None:
        ship_type = shipment.get("type", "INDIVIDUAL")
        if ship_type == "INDIVIDUAL":
            for member in ("groupId", "orderId"):
                if shipment.get(member) is not None:
                    issues.append(
                        Issue(
                            ("shipment", member),
                            "only applies to BULK shipments (shipment.type is INDIVIDUAL)",
                            IssueKind.NOT_ALLOWED,
                        )
                    )
        if delivery == NO_SHIPMENT and channel != "INSTANT":
            issues.append(
                Issue(
                    ("services", "delivery"),
                    "is required when the card is shipped: name the program's "
                    "shipping method (NO_SHIPMENT, the default, is for orders without shipment)",
                    IssueKind.MISSING,
                )
            )
    elif channel == "CENTRAL" and delivery not in (None, NO_SHIPMENT):
        issues.append(Issue(("shipment",), "is required: services.delivery names a shipping method", IssueKind.MISSING))
    if channel == "INSTANT":
        if delivery not in (None, NO_SHIPMENT):
            issues.append(
                Issue(
                    ("services", "delivery"),
                    "must be NO_SHIPMENT (or absent) for an INSTANT card, "
                    "which is handed over at the personalization station",
                    IssueKind.NOT_ALLOWED,
                )
            )
        if carrier not in (None, NO_CARRIER):
            issues.append(
                Issue(
                    ("services", "cardCarrier"),
                    "must be NO_CARRIER (or absent) for an INSTANT card",
                    IssueKind.NOT_ALLOWED,
                )
            )

    # A card carrier is personalized with an end-user name (docs/d1/card-order.md §9).
    if carrier not in (None, NO_CARRIER) and card is not None:
        address = _obj(shipment.get("deliveryAddress")) if shipment is not None else None
        has_name = bool(card.get("name")) or (
            address is not None and any(address.get(k) for k in ("title", "firstName", "lastName"))
        )
        if not has_name:
            issues.append(
                Issue(
                    ("services", "cardCarrier"),
                    f"needs an end-user name for the carrier: "
                    f"{'.'.join(map(str, card_path)) or 'card data'}.name or "
                    "shipment.deliveryAddress firstName/lastName",
                    IssueKind.MISSING,
                )
            )
    return issues


def expiry_month(value: str, expiry_format: str) -> int:
    return int(value[2:] if expiry_format == "YYMM" else value[:2])


def to_yymm(value: str, expiry_format: str) -> str:
    return value if expiry_format == "YYMM" else value[2:] + value[:2]


_FOUR_DIGITS = re.compile(r"^[0-9]{4}$")


def card_issues(
    card: Mapping[str, Any], track: Mapping[str, Any] | None, *, expiry_format: str, card_path: Path, track_path: Path
) -> list[Issue]:
    """Rules inside the card data: expiry month per the program's format, effective date not
    after expiry, and magnetic tracks that match the PAN and expiry. Reasons name fields only."""
    issues: list[Issue] = []
    exp = _str(card.get("exp"))
    exp_ok = exp is not None and bool(_FOUR_DIGITS.match(exp)) and 1 <= expiry_month(exp, expiry_format) <= 12
    if exp is not None and _FOUR_DIGITS.match(exp) and not exp_ok:
        issues.append(Issue((*card_path, "exp"), f"month must be 01-12 ({expiry_format})"))
    eff = _str(card.get("effectiveDate"))
    if eff is not None and _FOUR_DIGITS.match(eff):
        if not 1 <= expiry_month(eff, expiry_format) <= 12:
            issues.append(Issue((*card_path, "effectiveDate"), f"month must be 01-12 ({expiry_format})"))
        elif exp_ok and exp is not None and to_yymm(eff, expiry_format) > to_yymm(exp, expiry_format):
            issues.append(Issue((*card_path, "effectiveDate"), "must not be after the expiry date (exp)"))

    pan = _str(card.get("pan"))
    if track is not None:
        for member, regex in (("track1", TRACK1_RE), ("track2", TRACK2_RE)):
            value = _str(track.get(member))
            match = regex.match(value) if value is not None else None
            if match is None:
                continue
            if pan is not None and match["pan"] != pan:
                issues.append(
                    Issue(
                        (*track_path, member),
                        "the PAN in the track does not match the card's pan",
                        IssueKind.NOT_ALLOWED,
                    )
                )
            if exp_ok and exp is not None and match["exp"] != to_yymm(exp, expiry_format):
                issues.append(
                    Issue(
                        (*track_path, member),
                        "the expiry in the track (YYMM) does not match the card's exp",
                        IssueKind.NOT_ALLOWED,
                    )
                )
    return issues
