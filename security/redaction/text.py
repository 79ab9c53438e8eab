"""Card data and credentials in free text.

* card numbers as d1/card_data.py finds them (in their loose reading: separators may mix),
  masked by d1/masking.py; ids of the product's own format (trace and span ids, UUIDs)
  pass unchanged, whatever digits they hold;
* magnetic-stripe track layouts;
* ``key=value`` / ``"key": value`` pairs whose key names card data
  (:func:`~security.redaction.vocabulary.kind_of`, the same names as in structures);
* credentials: ``access_token=…``, ``password=…``, ``Bearer``/``Basic`` schemes.
"""

from __future__ import annotations

import re

from d1.card_data import pan_spans
from d1.masking import MASK, mask_pan
from security.redaction.vocabulary import Kind, kind_of

# Track 1: %B<PAN>^<NAME>^<YYMM><service code><discretionary>?   Track 2: ;<PAN>=<YYMM>...?
_TRACK1 = re.compile(r"%?B[0-9]{12,19}\^[^^\n\"']{0,26}\^[0-9]{4}[^\s\"',}?]*\??")
_TRACK2 = re.compile(r";?(?<![0-9])[0-9]{12,19}[=D][0-9]{4}[0-9]*\??")
# ``name=123``, ``"name": "12/31"``, ``'name': 123``, ``\"name\": \"123\"`` (JSON in a JSON
# string). The value must end the token: ``cid=123e4567`` is an id, and
# ``pan=411111******1111`` is already masked.
_NUMERIC_KV = re.compile(
    r"(?<![A-Za-z0-9_])(?P<name>[A-Za-z][A-Za-z0-9_.-]{0,63}+)"
    r"(?P<sep>[\\\"']{0,3}\s*[:=]\s*[\\\"']{0,3})"
    r"(?P<value>[0-9](?:[0-9 ./-]*[0-9])?)(?![0-9A-Za-z*])"
)
_TRACK_KV = re.compile(
    r"(?i)(?P<key>\btrack(?:[0-9]|data)?\b[\\\"']{0,3}\s*[:=]\s*[\\\"']{0,3})(?P<value>[^\\\"',}\s]+)"
)
_SECRET_KV = re.compile(
    r"(?i)(?P<key>\b(?:access_token|refresh_token|id_token|client_secret|assertion|password)\b"
    r"[\\\"']{0,3}\s*[:=]\s*[\\\"']{0,3})"
    r"(?P<value>[^\\\"',}\s&]+)"
)
_AUTH_SCHEME = re.compile(r"(?i)\b(?P<scheme>bearer|basic)\s+(?P<value>[A-Za-z0-9._~+/=-]{8,})")


def _mask_kv(match: re.Match[str]) -> str:
    kind = kind_of(match["name"])
    if kind is Kind.PAN:
        return match["name"] + match["sep"] + mask_pan(match["value"])
    if kind is Kind.CARD:
        return match["name"] + match["sep"] + MASK
    return match.group(0)


def redact_text(text: str) -> str:
    """Mask card data, card numbers and credentials in free text."""
    if not text:
        return text
    text = _TRACK1.sub(MASK, text)
    text = _TRACK2.sub(MASK, text)
    text = _TRACK_KV.sub(lambda m: m["key"] + MASK, text)
    text = _NUMERIC_KV.sub(_mask_kv, text)
    text = _SECRET_KV.sub(lambda m: m["key"] + MASK, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m['scheme']} {MASK}", text)
    out, last = [], 0
    for start, end in pan_spans(text):  # card numbers, masked (d1/masking.py)
        out += [text[last:start], mask_pan(text[start:end])]
        last = end
    return "".join([*out, text[last:]])
