"""The program configuration: what Thales fixes for a card program at onboarding.

D1's API only *references* onboarding data by identifier (docs/d1/card-order.md §16); one
JSON file holds it (``config/program.json``, or ``D1_PROGRAM_FILE`` / ``EMULATOR_PROGRAM_FILE``),
member by member the :class:`Program` model below (unknown members are refused, so a typo
is caught at start-up); docs/order-format.md explains each member. The optional member
``interface`` holds what D1 does not document: :mod:`d1.assumptions`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from d1.assumptions import D1Interface
from d1.iso_codes import ISO_639_1, ISO_3166_ALPHA2
from d1.issues import Issue, IssueKind
from d1.issues import Path as JsonPath
from d1.patterns import CARD_PRODUCT_ID_PATTERN, NO_CARRIER, NO_PACK, NO_SHIPMENT, ONBOARDING_ID_PATTERN
from d1.rules import as_object

ExpiryFormat = Literal["YYMM", "MMYY"]


def _compiles(value: str) -> str:
    re.compile(value)
    return value


def _codes(allowed: frozenset[str], what: str) -> AfterValidator:
    def check(value: list[str]) -> list[str]:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ValueError(f"not {what} codes: {bad}")
        return value

    return AfterValidator(check)


Regex = Annotated[str, AfterValidator(_compiles)]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrintedNameRule(_Config):
    """Rule for the names printed on the card (``name``, ``secondName``)."""

    # Whether ``name`` is mandatory (programs with graphical personalization print it).
    required: bool = False
    # D1's Card API limits embossed names to ^[a-zA-Z. -]{0,26}$ (inferred): the default.
    pattern: Regex = r"^[A-Za-z. -]+$"
    maxLength: int = Field(default=26, ge=1, le=64)
    # The pattern in plain words, used in error messages.
    rule: str = "letters, spaces, dots and hyphens"


class CardDataRules(_Config):
    expiryFormat: ExpiryFormat = "YYMM"
    printedName: PrintedNameRule = Field(default_factory=PrintedNameRule)


class ServiceIds(_Config):
    """Allowed values of ``services.*``."""

    priorities: list[str] = Field(default_factory=list)
    deliveryMethods: list[str] = Field(default_factory=list)
    cardCarriers: list[str] = Field(default_factory=list)
    packagings: list[str] = Field(default_factory=list)


class LinesRule(_Config):
    maxLines: int = Field(ge=0, le=20)
    maxLength: int = Field(ge=1, le=128)


class CardImageRule(_Config):
    """``cardDesign.cardImage`` ids come from Perso Design Services: their shape is known, not each id."""

    required: bool = False
    pattern: Regex = r"^img_[A-Za-z0-9]{1,60}$"


class CardDesignRules(_Config):
    cardImage: CardImageRule = Field(default_factory=CardImageRule)
    images: list[str] = Field(default_factory=list)
    customLines: LinesRule = Field(default_factory=lambda: LinesRule(maxLines=2, maxLength=26))


class CardCarrierRules(_Config):
    languages: Annotated[list[str], _codes(ISO_639_1, "ISO 639-1")] | None = None
    images: list[str] = Field(default_factory=list)
    customLines: LinesRule = Field(default_factory=lambda: LinesRule(maxLines=6, maxLength=60))


class PackagingRules(_Config):
    inserts: list[str] = Field(default_factory=list)


class ShipmentRules(_Config):
    allowedCountries: Annotated[list[str], Field(min_length=1), _codes(ISO_3166_ALPHA2, "ISO 3166-1 alpha-2")]
    # D1's shipment guide requires individualAddress for INDIVIDUAL, its own example omits it.
    individualAddressRequired: bool = False


class InstantRules(_Config):
    persoStations: list[str] | None = None


class PullAndChangeRules(_Config):
    """The issuer's own controls on pull & change (D1 never sees them; workflows/approvals.py)."""

    # A new delivery address (REDIRECT, ACCELERATE_AND_REDIRECT) waits for a second operator:
    # a change of address is the classic way a card is stolen in the post.
    fourEyesAddressChange: bool = True
    # An address change nobody approved in this long expires (ISO 8601 "PT24H", or seconds).
    addressChangeApprovalExpiry: timedelta = Field(default=timedelta(hours=24), gt=timedelta(0))


class LifecycleRules(_Config):
    """What the issuer decides about the card's life around its order (docs/operations.md,
    "Activation, replacement and returns")."""

    # An activation (D1's Card Activation call) of a card whose order has not reached delivered
    # is always recorded and counted; true also refuses it (a card intercepted in the post).
    refuseActivationBeforeDelivery: bool = False
    # Replacing or renewing a card whose order is still open: refuse, or cancel that order first.
    openOrderOnReplace: Literal["refuse", "cancel"] = "refuse"


class Program(_Config):
    programId: str = Field(min_length=1, max_length=64)
    description: str | None = None
    cardProducts: list[str] = Field(min_length=1)
    cardData: CardDataRules = Field(default_factory=CardDataRules)
    services: ServiceIds = Field(default_factory=ServiceIds)
    cardDesign: CardDesignRules = Field(default_factory=CardDesignRules)
    cardCarrier: CardCarrierRules = Field(default_factory=CardCarrierRules)
    packaging: PackagingRules = Field(default_factory=PackagingRules)
    shipment: ShipmentRules
    instant: InstantRules = Field(default_factory=InstantRules)
    pullAndChange: PullAndChangeRules = Field(default_factory=PullAndChangeRules)
    # What D1's documentation leaves open about its interface (our guesses by default).
    interface: D1Interface = Field(default_factory=D1Interface)
    lifecycle: LifecycleRules = Field(default_factory=LifecycleRules)

    def four_eyes_summary(self) -> str:
        """The start-up log line of this program's choice (the worker and the starter log it)."""
        rules = self.pullAndChange
        if not rules.fourEyesAddressChange:
            return f"program {self.programId}: four eyes on address changes OFF (a redirect goes to D1 at once)"
        return (
            f"program {self.programId}: four eyes on address changes ON (a redirect waits for a second "
            f"operator's approval, expiring after {_duration(rules.addressChangeApprovalExpiry)})"
        )

    def body_issues(self, body: Mapping[str, Any]) -> list[Issue]:
        """Onboarding rules on the order body (same member names for the issuer's and D1's shape).
        Values of the wrong type are skipped: the structural validation reports them."""
        out: list[Issue] = []
        product = body.get("cardProductId")
        if _well_formed(product, CARD_PRODUCT_ID_PATTERN) and product not in self.cardProducts:
            out.append(Issue(("cardProductId",), "is not a card product of this program", IssueKind.UNKNOWN_PRODUCT))

        services = as_object(body.get("services")) or {}
        ids = self.services
        for member, allowed, what, default in (
            ("priority", ids.priorities, "priority", None),
            ("delivery", ids.deliveryMethods, "shipping method", NO_SHIPMENT),
            ("cardCarrier", ids.cardCarriers, "card carrier template", NO_CARRIER),
            ("packaging", ids.packagings, "packaging", NO_PACK),
        ):
            value = services.get(member)
            if _well_formed(value, ONBOARDING_ID_PATTERN) and value != default and value not in allowed:
                reason = f"is not a {what} configured for this program"
                out.append(Issue(("services", member), reason, IssueKind.UNKNOWN_ID))

        design = as_object(body.get("cardDesign")) or {}
        rules = self.cardDesign
        image = design.get("cardImage")
        if isinstance(image, str) and not re.fullmatch(rules.cardImage.pattern, image):
            reason = "is not an image id of Perso Design Services for this program"
            out.append(Issue(("cardDesign", "cardImage"), reason))
        elif image is None and rules.cardImage.required:
            reason = "is required: this program prints picture cards"
            out.append(Issue(("cardDesign", "cardImage"), reason, IssueKind.MISSING))
        _list_in(out, design, ("cardDesign",), "images", rules.images, "card image")
        _lines(out, design, ("cardDesign",), rules.customLines)

        carrier = as_object(body.get("cardCarrierConfig")) or {}
        language = carrier.get("language")
        langs = self.cardCarrier.languages
        if isinstance(language, str) and language in ISO_639_1 and langs is not None and language not in langs:
            reason = "is not a carrier language of this program"
            out.append(Issue(("cardCarrierConfig", "language"), reason, IssueKind.UNKNOWN_ID))
        _list_in(out, carrier, ("cardCarrierConfig",), "images", self.cardCarrier.images, "carrier image")
        _lines(out, carrier, ("cardCarrierConfig",), self.cardCarrier.customLines)
        packaging = as_object(body.get("packagingConfig")) or {}
        _list_in(out, packaging, ("packagingConfig",), "inserts", self.packaging.inserts, "insert")

        shipment = as_object(body.get("shipment"))
        if shipment is not None:
            for member in ("deliveryAddress", "individualAddress"):
                address = as_object(shipment.get(member))
                if address is not None:
                    out += self.address_issues(address, ("shipment", member))
            if (
                self.shipment.individualAddressRequired
                and shipment.get("type", "INDIVIDUAL") == "INDIVIDUAL"
                and shipment.get("individualAddress") is None
            ):
                reason = "is required for INDIVIDUAL shipments in this program"
                out.append(Issue(("shipment", "individualAddress"), reason, IssueKind.MISSING))

        station = body.get("persoStation")
        stations = self.instant.persoStations
        if _well_formed(station, ONBOARDING_ID_PATTERN) and stations is not None and station not in stations:
            reason = "is not a personalization station registered for this program"
            out.append(Issue(("persoStation",), reason, IssueKind.UNKNOWN_ID))
        return out

    def address_issues(self, address: Mapping[str, Any], path: JsonPath) -> list[Issue]:
        """Program rules for an address (of the shipment, or pull & change's ``newDeliveryAddress``)."""
        country = address.get("countryCode")
        if isinstance(country, str) and country in ISO_3166_ALPHA2 and country not in self.shipment.allowedCountries:
            reason = "is not an allowed destination country for this program"
            return [Issue((*path, "countryCode"), reason, IssueKind.COUNTRY_NOT_ALLOWED)]
        return []

    def card_issues(self, card: Mapping[str, Any], card_path: JsonPath) -> list[Issue]:
        """Program rules on the card data: the names printed on the card."""
        out: list[Issue] = []
        rule = self.cardData.printedName
        for member in ("name", "secondName"):
            value = card.get(member)
            if not isinstance(value, str):
                if member == "name" and value is None and rule.required:
                    reason = "is required: this program prints the name on the card"
                    out.append(Issue((*card_path, member), reason, IssueKind.MISSING))
                continue
            if len(value) > rule.maxLength:
                out.append(Issue((*card_path, member), f"must be at most {rule.maxLength} characters to be printed"))
            elif not re.fullmatch(rule.pattern, value):
                out.append(Issue((*card_path, member), f"can only contain {rule.rule} to be printed"))
        return out


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds}s"


def _well_formed(value: Any, pattern: str) -> bool:
    """Only well-formed identifiers are looked up: a malformed one is already reported as such."""
    return isinstance(value, str) and re.fullmatch(pattern.strip("^$"), value) is not None


def _list_in(
    out: list[Issue], parent: Mapping[str, Any], path: JsonPath, member: str, allowed: list[str], what: str
) -> None:
    values = parent.get(member)
    if not isinstance(values, list):
        return
    reason = f"is not a {what} id configured for this program"
    for i, value in enumerate(values):
        if _well_formed(value, ONBOARDING_ID_PATTERN) and value not in allowed:
            out.append(Issue((*path, member, i), reason, IssueKind.UNKNOWN_ID))


def _lines(out: list[Issue], parent: Mapping[str, Any], path: JsonPath, rule: LinesRule) -> None:
    lines = parent.get("customLines")
    if not isinstance(lines, list):
        return
    if len(lines) > rule.maxLines:
        out.append(Issue((*path, "customLines"), f"this program prints at most {rule.maxLines} custom line(s)"))
    for i, line in enumerate(lines):
        if isinstance(line, str) and len(line) > rule.maxLength:
            out.append(Issue((*path, "customLines", i), f"must be at most {rule.maxLength} characters to be printed"))


# ------------------------------------------------------------------------- loading

DEFAULT_PROGRAM_FILE = Path(__file__).resolve().parent.parent / "config" / "program.json"


class ProgramConfigError(ValueError):
    """The program file is missing, not JSON, or does not match :class:`Program`."""


_cache: dict[Path, tuple[float, Program]] = {}


def load_program(path: Path | str | None = None) -> Program:
    """Read and validate the program file (cached; re-read when the file changes)."""
    file = Path(path) if path is not None else DEFAULT_PROGRAM_FILE
    try:
        mtime = file.stat().st_mtime
    except OSError as exc:
        raise ProgramConfigError(f"program file {file}: {exc.strerror or exc}") from None
    cached = _cache.get(file)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProgramConfigError(f"program file {file}: not readable JSON ({exc})") from None
    try:
        program = Program.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '$'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ProgramConfigError(f"program file {file}: {problems}") from None
    _cache[file] = (mtime, program)
    return program
