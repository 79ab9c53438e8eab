"""The field table: every documented input of the single-card order, with at least one valid
and one invalid value each, and where/how the problem must be reported.

One row drives two tests: the starter's validation (every problem at once, ``$.path``)
and the emulator's answer (400, ``errorCode``, ``error`` = the D1 JSON path, where card
data lives inside ``encryptedData``). Rows are built on the sample order
(tests/support/orders.py), which is valid under the default program configuration.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.support.orders import sample_order

DELETE = object()

# D1 documents two field codes (emulator/error_codes.py): a missing member or a value of the
# wrong type, pattern or length is a format error; a well-formed value that is not allowed
# is a value error. The names below say which kind of problem each row is.
FORMAT = "FIELD_INVALID_FORMAT"
VALUE = "FIELD_INVALID_VALUE"
MISSING = FORMAT
COMBINATION = VALUE
PRODUCT = VALUE
SERVICE = VALUE
COUNTRY = VALUE
# Case.d1_code default: D1 answers what the starter reports.
SAME = "same"

Path = tuple[str | int, ...]
Setup = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Case:
    id: str
    path: Path
    value: Any
    code: str | None = None  # None: valid. Else the emulator's errorCode
    error_path: Path | None = None  # default: path
    setup: Setup | None = None
    emulator: bool = True  # False: not part of D1's body (path ids) - starter only
    # Where D1's reading differs from the product's: None = D1 accepts, else its errorCode.
    d1_code: str | None = SAME

    @property
    def valid(self) -> bool:
        return self.code is None

    @property
    def emulator_code(self) -> str | None:
        return self.code if self.d1_code == SAME else self.d1_code

    @property
    def expected_path(self) -> Path:
        return self.error_path if self.error_path is not None else self.path


def set_path(order: dict[str, Any], path: Path, value: Any) -> None:
    node: Any = order
    for part in path[:-1]:
        if isinstance(part, str) and part not in node:
            node[part] = {}
        node = node[part]
    last = path[-1]
    if value is DELETE:
        if isinstance(node, dict):
            node.pop(last, None)
    else:
        node[last] = copy.deepcopy(value)


def build(case: Case, request_id: str, card_id: str) -> dict[str, Any]:
    order = sample_order(request_id, card_id=card_id)
    if case.setup is not None:
        case.setup(order)
    set_path(order, case.path, case.value)
    return order


def d1_path(path: Path) -> str:
    """The issuer's path as D1 reports it: card data and tracks live inside encryptedData."""
    if path[:1] == ("cardData",):
        path = ("encryptedData", *path[1:])
    elif path[:1] == ("trackData",):
        path = ("encryptedData", "trackData", *path[1:])
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def starter_path(path: Path) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


# ---------------------------------------------------------------------------- setups


def _instant(order: dict[str, Any]) -> None:
    order["distributionChannel"] = "INSTANT"
    order["persoStation"] = "BRANCH-017-ST1"
    order.pop("shipment", None)
    order["services"] = {"issuance": "CREATION"}


def _central_no_shipment(order: dict[str, Any]) -> None:
    order["distributionChannel"] = "CENTRAL"
    order.pop("shipment", None)
    order["services"] = {"issuance": "CREATION"}


def _bulk(order: dict[str, Any]) -> None:
    order["shipment"]["type"] = "BULK"
    order["shipment"]["groupId"] = "branch-017-box-01"


def _no_names(order: dict[str, Any]) -> None:
    order["cardData"].pop("name", None)
    for member in ("firstName", "lastName", "title"):
        order["shipment"]["deliveryAddress"].pop(member, None)


def _with_track(order: dict[str, Any]) -> None:
    order["trackData"] = {}


ADDRESS = {
    "title": "Mr",
    "firstName": "Jean",
    "lastName": "Exemple",
    "companyName": "Demo Bank Paris",
    "line1": "1 rue de Rivoli",
    "line2": "Batiment B",
    "line3": "3e etage",
    "city": "Paris",
    "state": "IDF",
    "zipCode": "75001",
    "countryCode": "FR",
    "mobilePhoneNumber": "+33612345678",
}
DA = ("shipment", "deliveryAddress")
IA = ("shipment", "individualAddress")
TRACK1 = "%B4111111111111111^SAMPLE/JANE^2906101000000000000000?"
TRACK2 = ";4111111111111111=29061010000000000000?"


def _address_cases(prefix: Path, tag: str) -> list[Case]:
    return [
        Case(f"{tag}-title-ok", (*prefix, "title"), "Dr"),
        Case(f"{tag}-title-long", (*prefix, "title"), "T" * 17, FORMAT),
        Case(f"{tag}-firstName-ok", (*prefix, "firstName"), "Jean-Luc"),
        Case(f"{tag}-firstName-long", (*prefix, "firstName"), "F" * 65, FORMAT),
        Case(f"{tag}-lastName-ok", (*prefix, "lastName"), "O'Brien"),
        Case(f"{tag}-lastName-control", (*prefix, "lastName"), "Sample\x07", FORMAT),
        Case(f"{tag}-companyName-ok", (*prefix, "companyName"), "Demo Bank"),
        Case(f"{tag}-companyName-long", (*prefix, "companyName"), "C" * 129, FORMAT),
        Case(f"{tag}-line1-ok", (*prefix, "line1"), "1 Plaza Ave"),
        Case(f"{tag}-line1-missing", (*prefix, "line1"), DELETE, MISSING),
        Case(f"{tag}-line1-empty", (*prefix, "line1"), "", FORMAT),
        Case(f"{tag}-line2-ok", (*prefix, "line2"), "Apt 4B"),
        Case(f"{tag}-line2-long", (*prefix, "line2"), "L" * 129, FORMAT),
        Case(f"{tag}-line3-ok", (*prefix, "line3"), "Floor 3"),
        Case(f"{tag}-line3-not-text", (*prefix, "line3"), 3, FORMAT),
        Case(f"{tag}-city-ok", (*prefix, "city"), "Chicago"),
        Case(f"{tag}-city-missing", (*prefix, "city"), DELETE, MISSING),
        Case(f"{tag}-state-ok", (*prefix, "state"), "IL"),
        Case(f"{tag}-state-long", (*prefix, "state"), "S" * 65, FORMAT),
        Case(f"{tag}-zipCode-ok", (*prefix, "zipCode"), "SW1A 1AA"),
        Case(f"{tag}-zipCode-bad", (*prefix, "zipCode"), "#####", FORMAT),
        Case(f"{tag}-zipCode-missing", (*prefix, "zipCode"), DELETE, MISSING),
        Case(f"{tag}-countryCode-ok", (*prefix, "countryCode"), "CA"),
        Case(f"{tag}-countryCode-lower", (*prefix, "countryCode"), "usa", FORMAT),
        Case(f"{tag}-countryCode-not-iso", (*prefix, "countryCode"), "XX", FORMAT),
        Case(f"{tag}-countryCode-not-allowed", (*prefix, "countryCode"), "JP", COUNTRY),
        Case(f"{tag}-countryCode-missing", (*prefix, "countryCode"), DELETE, MISSING),
        Case(f"{tag}-mobile-ok", (*prefix, "mobilePhoneNumber"), "+12125550100"),
        Case(f"{tag}-mobile-national", (*prefix, "mobilePhoneNumber"), "0612345678", FORMAT),
    ]


CASES: list[Case] = [
    # --- path identifiers (the issuer's order carries them; D1 has them in the URL) ---
    Case("issuerId-ok", ("issuerId",), "TESTISS001", emulator=False),
    Case("issuerId-short", ("issuerId",), "SHORT", FORMAT, emulator=False),
    Case("cardId-bad", ("cardId",), "card*1", FORMAT, emulator=False),
    # --- distributionChannel (discriminated) ---
    Case("channel-thales", ("distributionChannel",), "THALES"),
    # The product defaults THALES and always sends it; D1's schema requires it.
    Case("channel-absent-is-thales", ("distributionChannel",), DELETE, d1_code=FORMAT),
    Case("channel-central", ("distributionChannel",), "CENTRAL"),
    Case("channel-central-no-shipment", ("distributionChannel",), "CENTRAL", setup=_central_no_shipment),
    Case("channel-instant", ("distributionChannel",), "INSTANT", setup=_instant),
    Case("channel-unknown", ("distributionChannel",), "CENTRALISED", VALUE),
    Case("thales-shipment-missing", ("shipment",), DELETE, MISSING),
    Case(
        "central-shipping-method-without-shipment",
        ("services", "delivery"),
        "usps-imb",
        MISSING,
        error_path=("shipment",),
        setup=_central_no_shipment,
    ),
    Case("instant-persoStation-missing", ("persoStation",), DELETE, MISSING, setup=_instant),
    Case("instant-persoStation-unknown", ("persoStation",), "BRANCH-999-ST9", SERVICE, setup=_instant),
    Case("instant-persoStation-bad", ("persoStation",), "station 1!", FORMAT, setup=_instant),
    Case("instant-takes-no-shipment", ("shipment",), {"deliveryAddress": ADDRESS}, VALUE, setup=_instant),
    Case("instant-no-delivery-method", ("services", "delivery"), "usps-imb", COMBINATION, setup=_instant),
    Case("thales-no-persoStation", ("persoStation",), "BRANCH-017-ST1", VALUE),
    # --- cardProductId, consumerId, issuerRequestId ---
    Case("cardProductId-ok", ("cardProductId",), "DEMO_MC_CREDIT_01"),
    Case("cardProductId-bad", ("cardProductId",), "bad id!", FORMAT),
    Case("cardProductId-unknown", ("cardProductId",), "OTHER_PRODUCT_99", PRODUCT),
    Case("cardProductId-missing", ("cardProductId",), DELETE, MISSING),
    Case("consumerId-ok", ("consumerId",), "cust_42-b"),
    Case("consumerId-absent", ("consumerId",), DELETE, MISSING),
    Case("consumerId-bad", ("consumerId",), "has space", FORMAT),
    Case("consumerId-long", ("consumerId",), "c" * 65, FORMAT),
    Case("issuerRequestId-bad", ("issuerRequestId",), "bad/id", FORMAT),
    # The product's idempotency key; conditional for D1 (it then correlates by cardId).
    Case("issuerRequestId-missing", ("issuerRequestId",), DELETE, MISSING, d1_code=None),
    # --- services ---
    Case("services-missing", ("services",), DELETE, MISSING),
    Case("issuance-renewal", ("services", "issuance"), "RENEWAL"),
    Case("issuance-replacement", ("services", "issuance"), "REPLACEMENT"),
    Case("issuance-bad", ("services", "issuance"), "RENEW", VALUE),
    Case("issuance-missing", ("services", "issuance"), DELETE, MISSING),
    Case("priority-ok", ("services", "priority"), "URGENT"),
    Case("priority-unknown", ("services", "priority"), "SUPERFAST", SERVICE),
    Case("priority-bad", ("services", "priority"), "bad value", FORMAT),
    Case("delivery-ok", ("services", "delivery"), "laposte-cip"),
    Case("delivery-unknown", ("services", "delivery"), "pigeon-post", SERVICE),
    Case("delivery-default-with-shipment", ("services", "delivery"), DELETE, MISSING),
    Case("delivery-no-shipment-explicit", ("services", "delivery"), "NO_SHIPMENT", MISSING),
    Case("cardCarrier-none", ("services", "cardCarrier"), "NO_CARRIER"),
    Case("cardCarrier-unknown", ("services", "cardCarrier"), "carrier-xx", SERVICE),
    Case("cardCarrier-needs-a-name", ("services", "cardCarrier"), "carrier-welcome-en", MISSING, setup=_no_names),
    Case(
        "cardCarrier-name-from-address",
        ("services", "cardCarrier"),
        "carrier-welcome-en",
        setup=lambda o: o["cardData"].pop("name"),
    ),
    Case("packaging-ok", ("services", "packaging"), "premium-box"),
    Case("packaging-default", ("services", "packaging"), "NO_PACK"),
    Case("packaging-unknown", ("services", "packaging"), "gift-box", SERVICE),
    Case("pinMailer-ok", ("services", "pinMailer"), True),
    Case("pinMailer-not-bool", ("services", "pinMailer"), "yes", FORMAT),
    Case("alphaCard-ok", ("services", "alphaCard"), True),
    Case("alphaCard-not-bool", ("services", "alphaCard"), 1, FORMAT),
    # --- encrypted data plaintext ---
    Case("pan-19", ("cardData", "pan"), "4111111111111111110"),
    Case("pan-10", ("cardData", "pan"), "4000000002"),
    Case("pan-luhn", ("cardData", "pan"), "4111111111111112", FORMAT),
    Case("pan-short", ("cardData", "pan"), "400000000", FORMAT),
    Case("pan-long", ("cardData", "pan"), "41111111111111111111", FORMAT),
    Case("pan-letters", ("cardData", "pan"), "4111ABCD11111111", FORMAT),
    Case("pan-missing", ("cardData", "pan"), DELETE, MISSING),
    Case("exp-ok", ("cardData", "exp"), "3112"),
    Case("exp-month", ("cardData", "exp"), "2913", FORMAT),
    Case("exp-format", ("cardData", "exp"), "29-6", FORMAT),
    Case("exp-missing", ("cardData", "exp"), DELETE, MISSING),
    Case("name-ok", ("cardData", "name"), "J. SAMPLE-SMITH"),
    Case("name-absent", ("cardData", "name"), DELETE),
    Case("name-not-printable", ("cardData", "name"), "Jane_Sample!", FORMAT),
    Case("name-too-long", ("cardData", "name"), "A" * 27, FORMAT),
    Case("secondName-ok", ("cardData", "secondName"), "PLATINUM MEMBER"),
    Case("secondName-bad", ("cardData", "secondName"), "member #1", FORMAT),
    Case("encodedName-ok", ("cardData", "encodedName"), "SAMPLE/JANE"),
    Case("encodedName-bad", ("cardData", "encodedName"), "Jane Sample", FORMAT),
    Case("cvv1-ok", ("cardData", "cvv1"), "987"),
    Case("cvv1-bad", ("cardData", "cvv1"), "12", FORMAT),
    Case("cvv2-four", ("cardData", "cvv2"), "1234"),
    Case("cvv2-bad", ("cardData", "cvv2"), "12345", FORMAT),
    Case("pvv-ok", ("cardData", "pvv"), "4321"),
    Case("pvv-bad", ("cardData", "pvv"), "123", FORMAT),
    Case("psn-ok", ("cardData", "panSequenceNumber"), "01"),
    Case("psn-bad", ("cardData", "panSequenceNumber"), "1", FORMAT),
    Case("effectiveDate-ok", ("cardData", "effectiveDate"), "2601"),
    Case("effectiveDate-month", ("cardData", "effectiveDate"), "2613", FORMAT),
    Case("effectiveDate-after-exp", ("cardData", "effectiveDate"), "3001", FORMAT),
    Case("par-ok", ("cardData", "paymentAccountReference"), "V0010013019123456789012345678"),
    Case("par-short", ("cardData", "paymentAccountReference"), "V001001301912345678901234567", FORMAT),
    Case("cardData-unknown-member", ("cardData", "cvc"), "123", FORMAT),
    Case("cardData-missing", ("cardData",), DELETE, MISSING, emulator=False),
    # --- paymentApplication ---
    Case("paymentApplication-missing", ("paymentApplication",), DELETE, MISSING),
    Case("pa-config-ok", ("paymentApplication", "config"), "DEMO_MCHIP_ADV_123"),
    Case("pa-config-bad", ("paymentApplication", "config"), "bad config!", FORMAT),
    Case("pa-config-missing", ("paymentApplication", "config"), DELETE, MISSING),
    Case("pa-oda-ok", ("paymentApplication", "odaKeyIndex"), "0A"),
    Case("pa-oda-bad", ("paymentApplication", "odaKeyIndex"), "1", FORMAT),
    Case("pa-oda-missing", ("paymentApplication", "odaKeyIndex"), DELETE, MISSING),
    Case("pa-derivation-ok", ("paymentApplication", "derivationKeyIndex"), "02"),
    Case("pa-derivation-bad", ("paymentApplication", "derivationKeyIndex"), "XYZ", FORMAT),
    Case("pa-derivation-missing", ("paymentApplication", "derivationKeyIndex"), DELETE, MISSING),
    Case("pa-cvk-ok", ("paymentApplication", "cvKeyIndex"), "03"),
    Case("pa-cvk-bad", ("paymentApplication", "cvKeyIndex"), "ZZ", FORMAT),
    Case("pa-pvk-ok", ("paymentApplication", "pvKeyIndex"), "04"),
    Case("pa-pvk-bad", ("paymentApplication", "pvKeyIndex"), 4, FORMAT),
    # --- trackData (card data: inside encryptedData) ---
    Case("track1-ok", ("trackData", "track1"), TRACK1, setup=_with_track),
    Case("track1-bad", ("trackData", "track1"), "B4111^X", FORMAT, setup=_with_track),
    Case(
        "track1-other-pan",
        ("trackData", "track1"),
        TRACK1.replace("4111111111111111", "5555555555554444"),
        COMBINATION,
        setup=_with_track,
    ),
    Case("track2-ok", ("trackData", "track2"), TRACK2, setup=_with_track),
    Case("track2-bad", ("trackData", "track2"), "4111111111111111D", FORMAT, setup=_with_track),
    Case(
        "track2-other-expiry", ("trackData", "track2"), TRACK2.replace("=2906", "=3001"), COMBINATION, setup=_with_track
    ),
    Case("track3-ok", ("trackData", "track3"), ";0112345678901234=7247241000?", setup=_with_track),
    Case("track3-bad", ("trackData", "track3"), "ABC", FORMAT, setup=_with_track),
    Case("track-unknown-member", ("trackData", "track4"), "1", FORMAT, setup=_with_track),
    # --- cardDesign ---
    Case("cardImage-ok", ("cardDesign", "cardImage"), "img_1234567890"),
    Case("cardImage-not-pds", ("cardDesign", "cardImage"), "picture.png", FORMAT),
    Case("design-images-ok", ("cardDesign", "images"), ["demo-program-logo", "demo-contactless-mark"]),
    Case(
        "design-images-unknown",
        ("cardDesign", "images"),
        ["other-logo"],
        SERVICE,
        error_path=("cardDesign", "images", 0),
    ),
    Case("design-images-not-list", ("cardDesign", "images"), "demo-program-logo", FORMAT),
    Case("design-lines-ok", ("cardDesign", "customLines"), ["DEBIT", "MEMBER SINCE 2026"]),
    Case(
        "design-lines-too-long",
        ("cardDesign", "customLines"),
        ["X" * 27],
        FORMAT,
        error_path=("cardDesign", "customLines", 0),
    ),
    Case("design-lines-too-many", ("cardDesign", "customLines"), ["A", "B", "C"], FORMAT),
    Case("memberId-ok", ("cardDesign", "memberId"), "M0012345"),
    Case("memberId-bad", ("cardDesign", "memberId"), "M#1", FORMAT),
    # --- cardCarrierConfig ---
    Case("carrier-language-ok", ("cardCarrierConfig", "language"), "fr"),
    Case("carrier-language-3", ("cardCarrierConfig", "language"), "eng", FORMAT),
    Case("carrier-language-not-iso", ("cardCarrierConfig", "language"), "xx", FORMAT),
    Case("carrier-language-not-program", ("cardCarrierConfig", "language"), "pt", SERVICE),
    Case("carrier-images-ok", ("cardCarrierConfig", "images"), ["demo-carrier-banner"]),
    Case(
        "carrier-images-unknown",
        ("cardCarrierConfig", "images"),
        ["nope"],
        SERVICE,
        error_path=("cardCarrierConfig", "images", 0),
    ),
    Case("carrier-lines-ok", ("cardCarrierConfig", "customLines"), ["Welcome to Demo Bank", "Your new card"]),
    Case("carrier-lines-too-many", ("cardCarrierConfig", "customLines"), ["l"] * 7, FORMAT),
    # --- packagingConfig ---
    Case("inserts-ok", ("packagingConfig", "inserts"), ["privacy-notice"]),
    Case(
        "inserts-unknown",
        ("packagingConfig", "inserts"),
        ["welcome-letter", "flyer-x"],
        SERVICE,
        error_path=("packagingConfig", "inserts", 1),
    ),
    # --- shipment ---
    Case("shipment-type-bulk", ("shipment", "type"), "BULK"),
    Case("shipment-type-bad", ("shipment", "type"), "EXPRESS", VALUE),
    Case("groupId-on-bulk", ("shipment", "groupId"), "branch-017-box-01", setup=_bulk),
    Case("groupId-bad", ("shipment", "groupId"), "box 1!", FORMAT, setup=_bulk),
    Case("groupId-on-individual", ("shipment", "groupId"), "branch-017-box-01", COMBINATION),
    Case("orderId-on-bulk", ("shipment", "orderId"), "dispatch-2026-03-01", setup=_bulk),
    Case("orderId-on-individual", ("shipment", "orderId"), "dispatch-1", COMBINATION),
    Case("deliveryAddress-missing", DA, DELETE, MISSING),
    Case("individualAddress-ok", IA, ADDRESS),
    *_address_cases(DA, "delivery"),
    Case("individual-line1-missing", (*IA, "line1"), DELETE, MISSING, setup=lambda o: set_path(o, IA, ADDRESS)),
    Case(
        "individual-country-not-allowed", (*IA, "countryCode"), "JP", COUNTRY, setup=lambda o: set_path(o, IA, ADDRESS)
    ),
    # --- deprecated inputs: accepted and passed through ---
    Case("state-active", ("state",), "ACTIVE"),
    Case("state-bad", ("state",), "ENABLED", VALUE),
    Case("oldCardId-ok", ("oldCardId",), "card-old-0001"),
    Case("oldCardId-bad", ("oldCardId",), "old card!", FORMAT),
]
