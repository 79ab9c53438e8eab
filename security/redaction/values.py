"""Redacted copies of nested values: dicts, lists, tuples, sets, pydantic models,
dataclasses, span attributes.

A value under a key that names card data (security/redaction/vocabulary.py) is masked
whatever it is (a PAN masked by d1/masking.py, anything else fully, at any depth below it);
credentials always; names and addresses unless the caller may see them (``pii=False``).
Every other leaf, and every mapping key, is checked as text (a dict keyed by PAN).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

from d1.masking import MASK, mask_pan
from security.redaction.text import redact_text
from security.redaction.vocabulary import Kind, kind_of

_CONTAINERS = (list, tuple, set, frozenset)
# Keys repeat on every record, so their classification is remembered. Only keys that cannot
# be card data themselves are (at most two digits, shown as they are): a PAN, CVV or track
# used as a key must not outlive the call in a cache.
_KEY_CACHE: dict[str, Kind] = {}
_KEY_CACHE_MAX = 4096


def _key_info(key: Any) -> tuple[Any, Kind]:
    if isinstance(key, str):
        kind = _KEY_CACHE.get(key)
        if kind is not None:
            return key, kind
        kind = kind_of(key)
        shown = redact_text(key) if any(c.isdigit() for c in key) else key
        if shown is key and sum(c.isdigit() for c in key) <= 2 and len(_KEY_CACHE) < _KEY_CACHE_MAX:
            _KEY_CACHE[key] = kind
        return shown, kind
    shown = redact_scalar(key) if isinstance(key, int) and not isinstance(key, bool) else key
    return shown, kind_of(str(key))


def redact_scalar(value: Any) -> Any:
    """A leaf's text is checked; a non-string comes back unchanged unless its text had card data."""
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | float):  # a float PAN is not a thing; float timestamps are
        return value
    if isinstance(value, int):
        if abs(value) < 10**12:  # too short to be a PAN: the hot path for counters and ids
            return value
        text = str(value)
    elif isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", errors="replace")
    else:
        try:
            text = str(value)
        except Exception:  # an object that cannot print cannot leak through str() either
            return value
    redacted = redact_text(text)
    return value if redacted == text else redacted


def _put(out: dict[Any, Any], key: Any, value: Any) -> None:
    """Two PANs with the same masked form must not silently merge into one entry."""
    if key in out:
        n = 2
        while f"{key}#{n}" in out:
            n += 1
        key = f"{key}#{n}"
    out[key] = value


def _same_container(original: Any, items: list[Any]) -> Any:
    return next((kind(items) for kind in (tuple, frozenset, set) if isinstance(original, kind)), items)


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, str | int | float | bool | Mapping | list | tuple) or obj is None:
        return obj  # the hot path: no attribute lookups for plain data
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and not isinstance(obj, type):
        try:
            return dump(mode="json")
        except Exception:  # a model that cannot dump is redacted as text below
            return str(obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    return obj


def _mask_all(value: Any, *, pan: bool, pans_below: bool) -> Any:
    """Everything below a card or PII key is masked; below a card key, a PAN (by its own
    key) is masked as d1/masking.py says."""
    value = _to_plain(value)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            shown, kind = _key_info(key)
            _put(out, shown, _mask_all(item, pan=pans_below and kind is Kind.PAN, pans_below=pans_below))
        return out
    if isinstance(value, _CONTAINERS):
        return _same_container(value, [_mask_all(v, pan=pan, pans_below=pans_below) for v in value])
    if value is None:
        return None
    return mask_pan(str(value)) if pan else MASK


def redact_mapping(obj: Any, *, pii: bool = True) -> Any:
    """A redacted copy: containers keep their type, mappings become dicts. ``pii=False`` leaves
    names and addresses visible (an authenticated operator may see them)."""
    obj = _to_plain(obj)
    if isinstance(obj, Mapping):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            shown, kind = _key_info(key)
            redacted: Any
            if kind is Kind.PLAIN:
                redacted = redact_mapping(value, pii=pii)
            elif kind is Kind.SAFE:
                redacted = value
            elif kind in (Kind.PAN, Kind.CARD):
                redacted = _mask_all(value, pan=kind is Kind.PAN, pans_below=True)
            elif kind is Kind.SECRET:
                redacted = None if value is None else MASK
            elif pii:
                redacted = _mask_all(value, pan=False, pans_below=False)
            else:
                redacted = redact_mapping(value, pii=pii)
            _put(out, shown, redacted)
        return out
    if isinstance(obj, _CONTAINERS):
        return _same_container(obj, [redact_mapping(v, pii=pii) for v in obj])
    return redact_scalar(obj)


def redact_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenTelemetry attributes (flat, dotted keys; values are scalars or sequences of them)."""
    out: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        _, kind = _key_info(key)
        if kind is Kind.SAFE:
            out[key] = value
        elif kind is Kind.PAN:
            out[key] = mask_pan(str(value))
        elif kind in (Kind.CARD, Kind.SECRET, Kind.PII):
            out[key] = MASK
        elif isinstance(value, list | tuple):
            out[key] = tuple(redact_scalar(v) for v in value)
        else:
            out[key] = redact_scalar(value)
    return out


def redact_exception(exc: BaseException) -> str:
    """``Type: message`` of an exception, redacted: for error responses and failure texts."""
    return redact_text(f"{type(exc).__name__}: {exc}")
