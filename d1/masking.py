"""How card data may be shown: the one masking rule of the product."""

from __future__ import annotations

import re

MASK = "***"
_NOT_DIGIT = re.compile(r"[^0-9]")
MAX_FIRST, LAST = 6, 4


def shown_digits(length: int) -> tuple[int, int]:
    """(first, last) digits shown of a PAN of ``length`` digits: never more than the first 6 and
    the last 4 (the display PCI DSS allows) and never more than half the digits, so a short
    PAN keeps fewer leading ones (13 digits: first 2, last 4; 16: first 4, last 4); (0, 0)
    below 13 digits (too short to be a PAN: masked entirely)."""
    if length < 13:
        return 0, 0
    return min(MAX_FIRST, length // 2 - LAST), LAST


def mask_pan(value: str) -> str:
    """The digits of ``value`` as :func:`shown_digits` allows, the others as ``*``; ``***`` for
    values too short to be a PAN."""
    digits = _NOT_DIGIT.sub("", value)
    first, last = shown_digits(len(digits))
    if not last:
        return MASK
    return f"{digits[:first]}{'*' * (len(digits) - first - last)}{digits[-last:]}"
