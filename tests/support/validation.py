"""The issuer-side validation with the shipped sample program as default (tests only).

The product always passes the configured program (starter/edge.py); tests mostly use the
sample in config/program.json, so these wrappers default to it.
"""

from __future__ import annotations

from typing import Any

from d1 import validation
from d1.order import Address, CardOrder
from d1.program import Program, load_program
from d1.validation import FieldError, FieldWarning, InvalidOrder, OrderCheck, UnknownFields

__all__ = ["FieldError", "FieldWarning", "InvalidOrder", "check_order", "validate_address", "validate_order"]


def check_order(
    raw: Any,
    *,
    program: Program | None = None,
    unknown_fields: UnknownFields = "error",
    expiry_format: str | None = None,
) -> OrderCheck:
    return validation.check_order(
        raw, program=program or load_program(), unknown_fields=unknown_fields, expiry_format=expiry_format
    )


def validate_order(
    raw: Any,
    *,
    program: Program | None = None,
    unknown_fields: UnknownFields = "error",
    expiry_format: str | None = None,
) -> CardOrder:
    return validation.validate_order(
        raw, program=program or load_program(), unknown_fields=unknown_fields, expiry_format=expiry_format
    )


def validate_address(raw: Any, *, program: Program | None = None) -> Address:
    return validation.validate_address(raw, program=program or load_program())
