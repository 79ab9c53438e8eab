"""The issuer-side rules of an order: every problem at once, by JSON path, in plain words,
never echoing the value (it may be card data).

The starter calls it with the configured program (starter/edge.py); the emulator keeps its
own, independent reading of D1's rules (emulator/validation.py). Every layer runs even when
an earlier one found problems (:func:`check_order` reads top to bottom). What is an error
and what a warning (unknown members, deprecated members, ``unknown_fields="warn"``) is in
docs/order-format.md.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from d1 import rules
from d1.card_data_guard import identifier_issues
from d1.issues import Issue, IssueKind, Path, Severity, dedupe, issues_from_validation_error
from d1.order import Address, CardOrder, issuer_order_model
from d1.program import Program

UnknownFields = Literal["error", "warn"]
CARD_PATH: Path = ("cardData",)
TRACK_PATH: Path = ("trackData",)


@dataclass(frozen=True)
class FieldError:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class FieldWarning(FieldError):
    """Accepted, but probably not what the issuer meant."""


class InvalidOrder(ValueError):
    """Raised with *all* problems of an order; nothing was started."""

    def __init__(self, errors: list[FieldError], warnings: list[FieldWarning] | None = None) -> None:
        self.errors = errors
        self.warnings = warnings or []
        super().__init__(f"order is invalid ({len(errors)} problem(s)): " + "; ".join(map(str, errors)))


@dataclass
class OrderCheck:
    order: CardOrder | None
    errors: list[FieldError] = field(default_factory=list)
    warnings: list[FieldWarning] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.order is not None and not self.errors


_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_DIGIT_RUN = re.compile(r"[0-9]{6}")


def _safe_member_name(name: str) -> str | None:
    """A member name may be repeated back only if it cannot be card data."""
    return name if _PLAIN_NAME.match(name) and not _DIGIT_RUN.search(name) else None


def _nested_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(model class, is a list of it) for annotations like ``X``, ``X | None``, ``list[X] | None``."""
    if get_origin(annotation) in (Union, UnionType):
        found = (_nested_model(arg) for arg in get_args(annotation))
        return next((f for f in found if f[0] is not None), (None, False))
    if get_origin(annotation) is list:
        inner, _ = _nested_model(get_args(annotation)[0])
        return inner, inner is not None
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return (annotation if is_model else None), False


def unknown_member_issues(model: type[BaseModel], raw: Mapping[str, Any], path: Path = ()) -> list[Issue]:
    """Members of ``raw`` that ``model`` (recursively) does not define, with a suggestion."""
    fields = model.model_fields
    known = set(fields)
    out: list[Issue] = []
    for key, value in raw.items():
        if key not in known:
            name = _safe_member_name(str(key))
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75) if name else []
            hint = f"; did you mean '{close[0]}'?" if close else ""
            out.append(
                Issue((*path, name or "<member>"), f"is not a field of the D1 order{hint}", IssueKind.UNKNOWN_FIELD)
            )
            continue
        sub, is_list = _nested_model(fields[key].annotation)
        if sub is None:
            continue
        if is_list and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    out += unknown_member_issues(sub, item, (*path, key, i))
        elif isinstance(value, Mapping):
            out += unknown_member_issues(sub, value, (*path, key))
    return out


def _to_fields(issues: list[Issue]) -> tuple[list[FieldError], list[FieldWarning]]:
    errors = [FieldError(i.dotted("$"), i.reason) for i in issues if i.severity == Severity.ERROR]
    warnings = [FieldWarning(i.dotted("$"), i.reason) for i in issues if i.severity == Severity.WARNING]
    return errors, warnings


def check_order(
    raw: Any, *, program: Program, unknown_fields: UnknownFields = "error", expiry_format: str | None = None
) -> OrderCheck:
    """Every problem of an issuer's order (errors and warnings); the order when it is valid.
    ``expiry_format`` overrides the program's ``cardData.expiryFormat``."""
    if not isinstance(raw, Mapping):
        return OrderCheck(None, [FieldError("$", "an order must be a JSON object")])
    card = raw.get("cardData") if isinstance(raw.get("cardData"), Mapping) else None
    track = raw.get("trackData") if isinstance(raw.get("trackData"), Mapping) else None
    issues: list[Issue] = []
    # 1. shape: the channel's model (unknown members are reported in 5, with suggestions).
    model = issuer_order_model(raw)
    order: CardOrder | None = None
    try:
        order = model.model_validate(raw)
    except ValidationError as err:
        issues += [i for i in issues_from_validation_error(err) if i.kind != IssueKind.UNKNOWN_FIELD]
    # 2. the contract's rules across members of the body.
    issues += rules.body_issues(raw, card, card_path=CARD_PATH)
    # 3. the program's rules on the body.
    issues += program.body_issues(raw)
    # 4. card data: the program's printed names, then the contract's expiry and track rules.
    if card is not None:
        issues += program.card_issues(card, CARD_PATH)
        fmt = expiry_format or program.cardData.expiryFormat
        issues += rules.card_issues(card, track, expiry_format=fmt, card_path=CARD_PATH, track_path=TRACK_PATH)
    # 5. unknown members: errors (or warnings on request), always errors inside the card data.
    for issue in unknown_member_issues(model, raw):
        in_card_data = issue.path[:1] in (CARD_PATH, TRACK_PATH)
        issues.append(issue if unknown_fields == "error" or in_card_data else issue.as_warning())
    # 6. no card data in identifiers and free text: the card-data guard reads D1's body only,
    # and ``cardId``/``issuerId`` travel in D1's URL, the workflow id and search attributes.
    issues += identifier_issues({k: v for k, v in raw.items() if (k,) not in (CARD_PATH, TRACK_PATH)})
    # 7. warnings: accepted, but probably not what the issuer meant.
    issues += rules.order_warnings(raw)
    errors, warnings = _to_fields(dedupe(issues))
    return OrderCheck(order if not errors else None, errors, warnings)


def validate_order(
    raw: Any, *, program: Program, unknown_fields: UnknownFields = "error", expiry_format: str | None = None
) -> CardOrder:
    """The order, or :class:`InvalidOrder` carrying every problem at once."""
    check = check_order(raw, program=program, unknown_fields=unknown_fields, expiry_format=expiry_format)
    if check.order is None:
        raise InvalidOrder(check.errors, check.warnings)
    return check.order


def validate_address(raw: Any, *, program: Program, member: str = "newDeliveryAddress") -> Address:
    """A standalone address (pull & change redirect), reported under ``$.<member>``."""
    path: Path = (member,)
    if not isinstance(raw, Mapping):
        raise InvalidOrder([FieldError(f"$.{member}", "must be an object")])
    issues: list[Issue] = []
    address: Address | None = None
    try:
        address = Address.model_validate(raw)
    except ValidationError as err:
        issues += issues_from_validation_error(err, path)
    issues += program.address_issues(raw, path)
    issues += unknown_member_issues(Address, raw, path)
    errors, _ = _to_fields(dedupe(issues))
    if errors or address is None:
        raise InvalidOrder(errors)
    return address
