"""How card data may be shown: the one masking rule of the product."""

from __future__ import annotations

import re

MASK = "***"
_NOT_DIGIT = re.compile(r"[^0-9]")


def mask_pan(value: str) -> str:
    """First 6 / last 4 of the digits, the display PCI DSS allows; values too short to be a
    PAN (fewer than 13 digits) are masked entirely."""
    digits = _NOT_DIGIT.sub("", value)
    if len(digits) < 13:
        return MASK
    return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"
