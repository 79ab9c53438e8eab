"""One problem found in an order, by JSON path and in plain words, without its value.

Both readers of the contract produce these: the starter (every problem at once, as a
readable list) and the emulator (the first one, as D1's ``{"errorCode", "error"}``).
An :class:`Issue` never carries the submitted value: the field may be card data, and
the reason is shown to people and written to logs.

Pydantic's own messages are rephrased here (:func:`issues_from_validation_error`) from
the error *type* and its constraint context only (``max_length``, ``pattern``, the allowed
literals), never from the input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

PathPart = str | int
Path = tuple[PathPart, ...]


class IssueKind(StrEnum):
    """What kind of problem; the emulator maps each kind to one D1 ``errorCode``."""

    MISSING = "missing"  # a required member is absent
    INVALID = "invalid"  # wrong type, format, length or value
    NOT_ALLOWED = "not_allowed"  # valid alone, but not in this combination (e.g. groupId on INDIVIDUAL)
    UNKNOWN_PRODUCT = "unknown_product"  # cardProductId not onboarded for the program
    UNKNOWN_ID = "unknown_id"  # an onboarding identifier (delivery, carrier, insert, image...) not configured
    COUNTRY_NOT_ALLOWED = "country_not_allowed"  # destination country not allowed for the program
    UNKNOWN_FIELD = "unknown_field"  # member the contract does not define (probable typo)
    DEPRECATED = "deprecated"  # accepted and passed through, but deprecated by D1


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Issue:
    path: Path
    reason: str
    kind: IssueKind = IssueKind.INVALID
    severity: Severity = Severity.ERROR

    def dotted(self, root: str = "") -> str:
        """``("shipment", "deliveryAddress", "countryCode")`` → ``shipment.deliveryAddress.countryCode``;
        with ``root="$"`` → ``$.shipment...``; list indexes as ``[0]``."""
        out = root
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
        return out or "$"

    def as_warning(self) -> Issue:
        return Issue(self.path, self.reason, self.kind, Severity.WARNING)


def dedupe(issues: Iterable[Issue]) -> list[Issue]:
    """Keep the first issue per (path, reason); keep the order they were found in."""
    first: dict[tuple[Path, str], Issue] = {}
    for issue in issues:
        first.setdefault((issue.path, issue.reason), issue)
    return list(first.values())


# Error type of a well-formed member that is not allowed in this combination (a channel's rule,
# an unsupported carrier); D1's reading maps it to FIELD_INVALID_VALUE, not to a format error.
NOT_ALLOWED_ERROR = "value_not_allowed"


def not_allowed(reason: str) -> PydanticCustomError:
    return PydanticCustomError(NOT_ALLOWED_ERROR, reason)


# Plain-language rule for each pattern used by the contract models (d1/order.py registers them).
PATTERN_RULES: dict[str, str] = {}


def describe_pattern(pattern: str, rule: str) -> str:
    """Register the plain-language rule of ``pattern`` and return the pattern (for ``Field``)."""
    PATTERN_RULES[pattern] = rule
    return pattern


_MISSING = frozenset({"missing", "missing_argument", "missing_keyword_argument"})
_KINDS = {**dict.fromkeys(_MISSING, IssueKind.MISSING), "extra_forbidden": IssueKind.UNKNOWN_FIELD}
# Reasons that do not depend on the error's context.
_REASONS = {
    **dict.fromkeys(_MISSING, "is required"),
    "extra_forbidden": "is not a field of this object",
    "string_type": "must be a text string",
    "bool_type": "must be true or false (a JSON boolean)",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    **dict.fromkeys(("model_type", "dict_type", "model_attributes_type"), "must be an object"),
    "none_required": "must be absent",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
}


def _plain_reason(error: Any) -> str:
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    if kind in _REASONS:
        return _REASONS[kind]
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must be at least {n} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} item(s)"
    if kind == "string_pattern_mismatch":
        return PATTERN_RULES.get(str(ctx.get("pattern")), "has an invalid format")
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    # Any other pydantic message (value and assertion errors are ours; the rest describe the
    # expected type, never the input).
    return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")


def issues_from_validation_error(err: ValidationError, prefix: Path = ()) -> list[Issue]:
    """Every error of ``err`` as an :class:`Issue` (input values are never read)."""
    out: list[Issue] = []
    for e in err.errors(include_input=False, include_url=False, include_context=True):
        loc = tuple(p for p in e["loc"] if isinstance(p, (str, int)))
        kind = _KINDS.get(e["type"], IssueKind.INVALID)
        out.append(Issue((*prefix, *loc), _plain_reason(e), kind))
    return out
