"""The contract's rules across fields of an order, as plain functions over the raw JSON, so
that a reader can report *every* problem at once even when other fields are invalid.

The same member names hold in the issuer's order and in the body D1 receives, so both readers
use these rules: the starter (:mod:`d1.validation`) and the emulator. Program-specific rules
(known identifiers, allowed countries, printable names) live in :mod:`d1.program`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from d1.issues import Issue, IssueKind, Path, Severity
from d1.patterns import DEFAULT_CHANNEL, NO_CARRIER, NO_SHIPMENT, TRACK1_RE, TRACK2_RE

# Members accepted, passed through, and reported as deprecated.
DEPRECATED_MEMBERS: dict[str, str] = {
    "state": "is deprecated by D1 (cards are created ACTIVE); it is passed through but may stop working",
    "oldCardId": "is deprecated by D1; it is passed through but may stop working",
}


def as_object(value: Any) -> Mapping[str, Any] | None:
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
    channel = body.get("distributionChannel", DEFAULT_CHANNEL)
    services = as_object(body.get("services"))
    shipment = as_object(body.get("shipment"))
    delivery = _str(services.get("delivery", NO_SHIPMENT)) if services is not None else None
    carrier = _str(services.get("cardCarrier", NO_CARRIER)) if services is not None else None

    if shipment is not None:
        ship_type = shipment.get("type", "INDIVIDUAL")
        if ship_type == "INDIVIDUAL":
            for member in ("groupId", "orderId"):
                if shipment.get(member) is not None:
                    reason = "only applies to BULK shipments (shipment.type is INDIVIDUAL)"
                    issues.append(Issue(("shipment", member), reason, IssueKind.NOT_ALLOWED))
        if delivery == NO_SHIPMENT and channel != "INSTANT":
            reason = "is required when the card is shipped: name the program's shipping method"
            reason += " (NO_SHIPMENT, the default, is for orders without shipment)"
            issues.append(Issue(("services", "delivery"), reason, IssueKind.MISSING))
    elif channel == "CENTRAL" and delivery not in (None, NO_SHIPMENT):
        reason = "is required: services.delivery names a shipping method"
        issues.append(Issue(("shipment",), reason, IssueKind.MISSING))
    if channel == "INSTANT":
        if delivery not in (None, NO_SHIPMENT):
            reason = "must be NO_SHIPMENT (or absent) for an INSTANT card, "
            reason += "which is handed over at the personalization station"
            issues.append(Issue(("services", "delivery"), reason, IssueKind.NOT_ALLOWED))
        if carrier not in (None, NO_CARRIER):
            reason = "must be NO_CARRIER (or absent) for an INSTANT card"
            issues.append(Issue(("services", "cardCarrier"), reason, IssueKind.NOT_ALLOWED))

    # A card carrier is personalized with an end-user name (docs/d1/card-order.md §9).
    if carrier not in (None, NO_CARRIER) and card is not None:
        address = as_object((shipment or {}).get("deliveryAddress")) or {}
        if not (card.get("name") or any(address.get(k) for k in ("title", "firstName", "lastName"))):
            where = ".".join(map(str, card_path)) or "card data"
            reason = (
                f"needs an end-user name for the carrier: {where}.name or shipment.deliveryAddress firstName/lastName"
            )
            issues.append(Issue(("services", "cardCarrier"), reason, IssueKind.MISSING))
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
    bad_month = f"month must be 01-12 ({expiry_format})"
    exp = _str(card.get("exp"))
    exp_yymm: str | None = None  # only a valid expiry is compared with the others
    if exp is not None and _FOUR_DIGITS.match(exp):
        if 1 <= expiry_month(exp, expiry_format) <= 12:
            exp_yymm = to_yymm(exp, expiry_format)
        else:
            issues.append(Issue((*card_path, "exp"), bad_month))
    eff = _str(card.get("effectiveDate"))
    if eff is not None and _FOUR_DIGITS.match(eff):
        if not 1 <= expiry_month(eff, expiry_format) <= 12:
            issues.append(Issue((*card_path, "effectiveDate"), bad_month))
        elif exp_yymm is not None and to_yymm(eff, expiry_format) > exp_yymm:
            issues.append(Issue((*card_path, "effectiveDate"), "must not be after the expiry date (exp)"))

    pan = _str(card.get("pan"))
    for member, regex in (("track1", TRACK1_RE), ("track2", TRACK2_RE)):
        value = _str((track or {}).get(member))
        match = regex.match(value) if value is not None else None
        if match is None:
            continue
        if pan is not None and match["pan"] != pan:
            reason = "the PAN in the track does not match the card's pan"
            issues.append(Issue((*track_path, member), reason, IssueKind.NOT_ALLOWED))
        if exp_yymm is not None and match["exp"] != exp_yymm:
            reason = "the expiry in the track (YYMM) does not match the card's exp"
            issues.append(Issue((*track_path, member), reason, IssueKind.NOT_ALLOWED))
    return issues


def order_warnings(raw: Mapping[str, Any]) -> list[Issue]:
    """What is accepted but probably not meant: deprecated members, a BULK card shipped alone."""
    out = [
        Issue((member,), reason, IssueKind.DEPRECATED, Severity.WARNING)
        for member, reason in DEPRECATED_MEMBERS.items()
        if member in raw
    ]
    shipment = raw.get("shipment")
    if (
        isinstance(shipment, Mapping)
        and shipment.get("type") == "BULK"
        and not (shipment.get("groupId") or shipment.get("orderId"))
    ):
        reason = "is absent: this BULK card ships in a container of its own; "
        reason += "set groupId (and orderId) to ship cards together"
        out.append(Issue(("shipment", "groupId"), reason, IssueKind.MISSING, Severity.WARNING))
    return out
