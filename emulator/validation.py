"""Turn pydantic validation failures into D1's ``{"errorCode", "error"}`` answer.

D1 reports the first field in error by its path (errors.md §2). The text is built from
the error location and pydantic's message only; the ``d1`` models hide input values in
their errors, and this module never reads ``input`` or ``ctx``, so a submitted PAN (or
any other value) can never be echoed back or logged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import ValidationError

from emulator.error_codes import D1Error, ErrorCode

_MISSING_TYPES = frozenset({"missing", "missing_argument", "missing_keyword_argument"})
# Model-level rules in d1.order phrase a missing member as "<field> is required ...".
_REQUIRED_RULE = re.compile(r"^(?:Value error, )?([A-Za-z][A-Za-z0-9_]*) is required\b")
_SAFE_TEXT = re.compile(r"[^A-Za-z0-9 _.,:;'()\[\]{}^$*+?|\\/=<>-]")
# A JSON member name is client-chosen text: only plain identifiers are repeated back.
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def json_path(loc: Sequence[int | str], prefix: str = "") -> str:
    """``("shipment", "deliveryAddress", "countryCode")`` → ``shipment.deliveryAddress.countryCode``."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = part if _PLAIN_NAME.match(part) else "<member>"
            path = f"{path}.{name}" if path else name
    return path or "$"


def _reason(message: str) -> str:
    message = message.removeprefix("Value error, ")
    return _SAFE_TEXT.sub("", message)[:200]


def to_d1_error(exc: ValidationError, prefix: str = "") -> D1Error:
    """The first error of ``exc`` as a 400 D1Error naming the field's JSON path."""
    errors = exc.errors(include_input=False, include_context=False, include_url=False)
    if not errors:
        return D1Error(ErrorCode.FIELD_INVALID_FORMAT, f"{prefix or '$'}: invalid")
    first = errors[0]
    loc = first["loc"]
    message = first["msg"]
    if first["type"] in _MISSING_TYPES:
        return D1Error(ErrorCode.MANDATORY_FIELD_MISSING, f"{json_path(loc, prefix)}: field required")
    required = _REQUIRED_RULE.match(message) if not loc else None
    if required:
        field = json_path((*loc, required.group(1)), prefix)
        return D1Error(ErrorCode.MANDATORY_FIELD_MISSING, f"{field}: {_reason(message)}")
    return D1Error(ErrorCode.FIELD_INVALID_FORMAT, f"{json_path(loc, prefix)}: {_reason(message)}")
