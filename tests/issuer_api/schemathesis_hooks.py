"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS by test_schemathesis.py): a check that no
response holds card data, neither a card number nor any card-data value the request carried."""

from __future__ import annotations

import re
from typing import Any

import schemathesis

from d1.card_data import luhn_valid

_DIGIT_RUNS = re.compile(r"(?<!\d)\d{13,19}(?!\d)")


def _card_values(body: Any) -> set[str]:
    """Strings inside the request's cardData/trackData (the long ones: a short one may occur by chance)."""
    found: set[str] = set()
    if isinstance(body, dict):
        for key, value in body.items():
            if key in ("cardData", "trackData"):
                found |= {v for v in _strings(value) if len(v) >= 6}
            else:
                found |= _card_values(value)
    elif isinstance(body, list):
        for item in body:
            found |= _card_values(item)
    return found


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@schemathesis.check
def no_card_data(ctx: Any, response: Any, case: Any) -> bool | None:
    text = response.text or ""
    for run in _DIGIT_RUNS.findall(text):
        if luhn_valid(run):
            raise AssertionError("a card number is in the response")
    body = case.body if isinstance(case.body, dict | list) else None
    for value in _card_values(body):
        if value in text:
            raise AssertionError("a card-data value of the request is in the response")
    return None
