"""Early, friendly validation of an issuer's order: every problem at once, by JSON path,
in plain words, never echoing the value (it may be card data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from d1.order import CardOrder


@dataclass(frozen=True)
class FieldError:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class InvalidOrder(ValueError):
    """Raised with *all* problems of an order; nothing was started."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__(f"order is invalid ({len(errors)} problem(s)): " + "; ".join(map(str, errors)))


def _path(loc: tuple[int | str, ...]) -> str:
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def field_errors(err: ValidationError) -> list[FieldError]:
    errors = []
    for e in err.errors(include_input=False, include_url=False, include_context=False):
        msg = e["msg"].removeprefix("Value error, ")
        errors.append(FieldError(path=_path(tuple(e["loc"])), reason=msg))
    return errors


def validate_order(raw: Any) -> CardOrder:
    if not isinstance(raw, dict):
        raise InvalidOrder([FieldError("$", "an order must be a JSON object")])
    try:
        return CardOrder.model_validate(raw)
    except ValidationError as err:
        raise InvalidOrder(field_errors(err)) from None


def mask_pan(pan: str) -> str:
    """First 6 / last 4, the display PCI DSS allows."""
    if len(pan) < 13:
        return "*" * (len(pan) - 4) + pan[-4:]
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]
