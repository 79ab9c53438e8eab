"""One redaction layer for everything that leaves a process in clear: log records,
exception texts, OpenTelemetry span attributes, query results and codec-server output.

Card data (PAN, expiry, CVV/CVC, PVV, tracks, PIN) must never appear outside the JWE and
the encrypted Temporal payloads; names and addresses (PII) must not reach logs. Two
independent nets catch it:

* **field names** — a value under a key such as ``pan``, ``exp``/``expMonth``/
  ``expirationDate``, ``cvv2``/``securityCode``/``cvn``/``cid``/``cardVerificationValue``,
  ``pvv``, ``track2``, ``cardData`` or ``trackData`` is masked (PAN: first 6 / last 4; all
  else fully), at any depth (dicts, lists, tuples, sets, pydantic models, dataclasses);
  PII keys (``name``, ``firstName``, ``line1``, ``zipCode``, … and everything under
  ``deliveryAddress``) are masked unless the caller opts out (``pii=False``); credentials
  (``authorization``, ``access_token``, ``client_secret``, ``assertion``, …) always are.
  ``encryptedData`` is ciphertext and stays as it is. Mapping *keys* are checked as text
  too (a dict keyed by PAN).
* **shapes in free text** — Luhn-valid runs of 13-19 digits, also written in groups with
  spaces, dashes, dots or slashes between them (see :func:`_mask_pan_run` for which
  groupings count), magnetic-stripe track layouts, ``key=value`` / ``"key": value`` pairs
  for the card keys above, and ``Bearer``/``Basic`` credentials. Digit runs that are not
  Luhn-valid (ids, timestamps, operation ids) stay as they are.

Log records keep their shape: arguments are redacted one by one in place (a string stays
a string, a tuple a tuple), so formatters that read ``record.args`` — uvicorn's access log
unpacks five of them — keep working. Exceptions are redacted with their whole chain
(``raise … from …`` and implicit context), in the cached ``exc_text`` and in ``exc_info``.

Public API (other packages, e.g. ``observability/``, call these): :func:`redact_text`,
:func:`redact_mapping`, :class:`RedactingFilter`, :func:`install_log_redaction`,
:func:`redact_attributes`, :class:`RedactingSpanExporter`, :func:`redact_exception`,
:func:`redact_exc_text`, :func:`redact_exc_info`, :func:`redact_record`, :func:`mask_pan`.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from enum import IntEnum
from types import TracebackType
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from d1.masking import MASK, mask_pan
from d1.order import luhn_valid

# ---------------------------------------------------------------- field names


def _norm(key: str) -> str:
    """``card_data``, ``cardData``, ``card-data`` and ``d1.cardData`` all become ``carddata``."""
    return key.rsplit(".", 1)[-1].replace("_", "").replace("-", "").lower()


_PAN_KEYS = frozenset({"pan", "primaryaccountnumber", "cardnumber", "accountnumber"})
_EXPIRY_KEYS = frozenset(
    {
        "exp",
        "expdate",
        "expmonth",
        "expyear",
        "expiry",
        "expirydate",
        "expirymonth",
        "expiryyear",
        "expiration",
        "expirationdate",
        "expirationmonth",
        "expirationyear",
        "cardexpiry",
        "cardexpirydate",
        "cardexpirationdate",
    }
)
# Names issuers, acquirers and PSP APIs give the card security code (CVV2/CVC2/CID/CVN/…).
_SECURITY_CODE_KEYS = frozenset(
    {
        "csc",
        "cid",
        "cvd",
        "cav",
        "cav2",
        "cardcode",
        "securitycode",
        "cardsecuritycode",
        "cardverificationvalue",
        "cardverificationcode",
        "cardverificationnumber",
        "verificationvalue",
    }
)
_CARD_KEYS = _EXPIRY_KEYS | _SECURITY_CODE_KEYS | {"pvv", "pin", "pinblock"}
_CARD_PREFIXES = ("cvv", "cvc", "cvn")  # cvv2, cvc3, cvvValue, cvnumber, …
_CARD_SUFFIXES = ("cvv", "cvv2", "cvc", "cvc2", "cvn", "cvn2", "securitycode", "verificationvalue")
_TRACK_KEY = re.compile(r"^track(?:s|data|[0-9].*)?$")
# Everything below these keys is card data (every scalar masked, a PAN as first 6 / last 4).
_CARD_SUBTREES = frozenset({"carddata", "trackdata", "tracks", "sensitiveplaintext"})
_SECRET_KEYS = frozenset(
    {
        "authorization",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "assertion",
        "clientsecret",
        "password",
        "secret",
        "apikey",
        "privatekey",
        "proxyauthorization",
        "cookie",
        "setcookie",
    }
)
_PII_KEYS = frozenset(
    {
        "name",
        "secondname",
        "encodedname",
        "cardholdername",
        "firstname",
        "lastname",
        "fullname",
        "companyname",
        "line1",
        "line2",
        "line3",
        "addressline1",
        "addressline2",
        "zipcode",
        "postalcode",
        "postcode",
        "mobilephonenumber",
        "phonenumber",
        "phone",
        "email",
        "emailaddress",
        "dateofbirth",
    }
)
_PII_SUBTREES = frozenset({"deliveryaddress", "individualaddress", "address", "billingaddress"})
# Ciphertext or ids: explicitly safe even though a prefix rule might catch them.
_SAFE_KEYS = frozenset({"encrypteddata", "maskedpan", "trackingnumber", "trackingurl"})


class _Kind(IntEnum):
    PLAIN = 0
    SAFE = 1
    PAN = 2
    CARD = 3  # expiry, security code, PVV, PIN, a track: masked as a whole
    CARD_SUBTREE = 4
    SECRET = 5
    PII = 6
    PII_SUBTREE = 7


def _kind_of(n: str) -> _Kind:
    """What a normalised key (see :func:`_norm`) holds. The one classification for mapping
    keys, span attribute names and ``key=value`` names in text."""
    if n in _SAFE_KEYS:
        return _Kind.SAFE
    if n in _PAN_KEYS:
        return _Kind.PAN
    if n in _CARD_KEYS or n.startswith(_CARD_PREFIXES) or n.endswith(_CARD_SUFFIXES) or _TRACK_KEY.match(n) is not None:
        return _Kind.CARD
    if n in _CARD_SUBTREES:
        return _Kind.CARD_SUBTREE
    if n in _SECRET_KEYS:
        return _Kind.SECRET
    if n in _PII_KEYS:
        return _Kind.PII
    if n in _PII_SUBTREES:
        return _Kind.PII_SUBTREE
    return _Kind.PLAIN


def _card_key(n: str) -> bool:
    return _kind_of(n) is _Kind.CARD


# Field names repeat on every record, so their classification is remembered. Only names
# that cannot be card data themselves are (at most two digits, nothing redact_text masks):
# a PAN, CVV or track used as a key must not outlive the call in a cache.
_KEY_CACHE: dict[str, tuple[str, _Kind]] = {}
_KEY_CACHE_MAX = 4096


def _key_info(key: Any) -> tuple[Any, str, _Kind]:
    """``(key as it may be shown, normalised name, kind)`` for a mapping key or attribute name."""
    if isinstance(key, str):
        cached = _KEY_CACHE.get(key)
        if cached is not None:
            return key, cached[0], cached[1]
        n = _norm(key)
        kind = _kind_of(n)
        shown = _redact_key(key)
        if shown is key and sum(c.isdigit() for c in key) <= 2 and len(_KEY_CACHE) < _KEY_CACHE_MAX:
            _KEY_CACHE[key] = (n, kind)
        return shown, n, kind
    n = _norm(str(key))
    return _redact_key(key), n, _kind_of(n)


# ---------------------------------------------------------------- free text

# Between the digit groups of a written PAN: up to three spaces, tabs, no-break spaces,
# dashes, dots or slashes, mixed ("4929 7316-4058.2292", "4929 / 7316 / …").
_SEP = r"[ \t\u00a0./-]{1,3}"
# A maximal run of digit groups holding at least 13 digits; _mask_pan_run decides.
_PAN_RUN = re.compile(r"(?<![0-9])[0-9](?:(?:" + _SEP + r")?[0-9]){12,}")
_DIGIT_GROUP = re.compile(r"[0-9]+")
_DIGIT = re.compile(r"[0-9]")
# Track 1: %B<PAN>^<NAME>^<YYMM><service code><discretionary>?   Track 2: ;<PAN>=<YYMM>...?
_TRACK1 = re.compile(r"%?B[0-9]{12,19}\^[^^\n\"']{0,26}\^[0-9]{4}[^\s\"',}?]*\??")
_TRACK2 = re.compile(r";?(?<![0-9])[0-9]{12,19}[=D][0-9]{4}[0-9]*\??")
# ``name=123``, ``"name": "12/31"``, ``'name': 123``, ``\"name\": \"123\"`` (JSON in a JSON
# string): the name is classified like a mapping key (_kind_of), so text and structures
# agree on what card data is called. The value must end the token: ``cid=123e4567`` is an
# id, and ``pan=411111******1111`` is already masked.
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


def _mask_pan_run(match: re.Match[str]) -> str:
    """Mask every Luhn-valid PAN-length window of whole digit groups in a run.

    Which groupings count is how people and systems write a PAN: one run of digits; groups
    of four or more, the last one possibly three (4-4-4-4, Amex 4-6-5, Diners 4-6-4,
    4-4-4-4-3, 6-10); or digit by digit with one character between (13 to 19 of them, not
    part of a longer such stretch). Dates, IP addresses,
    version numbers and lists of numbers have groups of one to three digits, so
    "2024/01/15 2024/01/16" or "10.100.200.300 192.168.1.1" are never taken for a card
    number, Luhn-valid or not. Windows are aligned on the groups (a PAN never starts or ends
    inside a group, so a longer id is never cut up), and overlapping hits are masked
    together, so a PAN next to other numbers ("4929 7316 4058 2292 3108") cannot show more
    than 6 + 4 digits. Each start looks at no more than five groups: linear in the run.
    """
    text = match.group(0)
    if text.isdigit():  # the common case: one run, no separators
        return mask_pan(text) if len(text) <= 19 and luhn_valid(text) else text
    groups = list(_DIGIT_GROUP.finditer(text))
    hits: list[tuple[int, int]] = []
    stretch: list[re.Match[str]] = []  # digit by digit: the whole stretch is the candidate
    for group in [*groups, None]:
        if (
            group is not None
            and group.end() - group.start() == 1
            and (not stretch or group.start() - stretch[-1].end() == 1)
        ):
            stretch.append(group)
            continue
        if 13 <= len(stretch) <= 19 and luhn_valid("".join(g.group(0) for g in stretch)):
            hits.append((stretch[0].start(), stretch[-1].end()))
        stretch = [group] if group is not None and group.end() - group.start() == 1 else []
    for i, first in enumerate(groups):
        if first.end() - first.start() == 1:
            continue
        digits = ""
        for j in range(i, len(groups)):
            group = groups[j]
            if j > i and (groups[j - 1].end() - groups[j - 1].start() < 4 or group.end() - group.start() < 3):
                break  # groups of four or more; only the last may have three
            digits += group.group(0)
            if len(digits) > 19:
                break
            if len(digits) >= 13 and luhn_valid(digits):
                hits.append((first.start(), group.end()))
    if not hits:
        return text
    merged: list[list[int]] = []
    for start, end in sorted(hits):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, last = [], 0
    for start, end in merged:
        out += [text[last:start], mask_pan(text[start:end])]
        last = end
    out.append(text[last:])
    return "".join(out)


def _mask_kv(match: re.Match[str]) -> str:
    name = match["name"]
    cached = _KEY_CACHE.get(name)
    kind = cached[1] if cached is not None else _kind_of(_norm(name))
    if kind is _Kind.PAN:
        return name + match["sep"] + mask_pan(match["value"])
    if kind is _Kind.CARD:
        return name + match["sep"] + MASK
    return match.group(0)


def redact_text(text: str) -> str:
    """Mask card data, PAN-shaped numbers and credentials in free text."""
    if not text:
        return text
    text = _TRACK1.sub(MASK, text)
    text = _TRACK2.sub(MASK, text)
    text = _TRACK_KV.sub(lambda m: m["key"] + MASK, text)
    text = _NUMERIC_KV.sub(_mask_kv, text)
    text = _SECRET_KV.sub(lambda m: m["key"] + MASK, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m['scheme']} {MASK}", text)
    return _PAN_RUN.sub(_mask_pan_run, text)


def _findings(text: str) -> int:
    """How many things :func:`redact_text` would mask in ``text`` (to tell which log
    argument a finding depends on; only used once a record is known to need redaction)."""
    count = 0
    for pattern in (_TRACK1, _TRACK2, _AUTH_SCHEME):
        count += sum(1 for _ in pattern.finditer(text))
    for pattern in (_TRACK_KV, _SECRET_KV):  # "password=***" is already masked
        count += sum(1 for m in pattern.finditer(text) if m["value"] != MASK)
    count += sum(1 for m in _NUMERIC_KV.finditer(text) if _mask_kv(m) != m.group(0))
    count += sum(1 for m in _PAN_RUN.finditer(text) if _mask_pan_run(m) != m.group(0))
    return count


# ---------------------------------------------------------------- structures


def _redact_scalar(value: Any) -> Any:
    """A leaf that is not under a card, secret or PII key: its text is checked for shapes.
    Strings come back as strings; anything else unchanged unless its text had card data."""
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


def _redact_key(key: Any) -> Any:
    """A mapping key that is itself card data (a dict keyed by PAN or track) is masked."""
    if isinstance(key, str):
        return redact_text(key) if _DIGIT.search(key) else key
    if isinstance(key, int) and not isinstance(key, bool):
        return _redact_scalar(key)
    return key


def _put(out: dict[Any, Any], key: Any, value: Any) -> None:
    """Two PANs with the same first 6 / last 4 must not silently merge into one entry."""
    if key in out:
        n = 2
        while f"{key}#{n}" in out:
            n += 1
        key = f"{key}#{n}"
    out[key] = value


def _same_container(original: Any, items: list[Any]) -> Any:
    if isinstance(original, tuple):
        return tuple(items)
    if isinstance(original, frozenset):
        return frozenset(items)
    if isinstance(original, set):
        return set(items)
    return items


_CONTAINERS = (list, tuple, set, frozenset)


def _mask_card_value(key_norm: str | None, value: Any) -> Any:
    """A value that is card data as a whole: a PAN keeps first 6 / last 4, the rest goes."""
    value = _to_plain(value)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            shown, n, _ = _key_info(k)
            _put(out, shown, _mask_card_value(n, v))
        return out
    if isinstance(value, _CONTAINERS):
        return _same_container(value, [_mask_card_value(key_norm, v) for v in value])
    if value is None:
        return None
    if key_norm in _PAN_KEYS:
        return mask_pan(str(value))
    return MASK


def _mask_pii_value(value: Any) -> Any:
    value = _to_plain(value)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            _put(out, _redact_key(k), _mask_pii_value(v))
        return out
    if isinstance(value, _CONTAINERS):
        return _same_container(value, [_mask_pii_value(v) for v in value])
    return None if value is None else MASK


def _to_plain(obj: Any) -> Any:
    """pydantic models and dataclasses as plain JSON-like data (anything else unchanged)."""
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


def redact_mapping(obj: Any, *, pii: bool = True) -> Any:
    """A redacted copy of a JSON-like structure (dicts, lists, tuples, sets, strings,
    numbers; pydantic models and dataclasses are dumped first; other objects are checked by
    their text). Containers keep their type (a tuple stays a tuple), mappings become dicts.
    ``pii=False`` leaves names and addresses visible (an authenticated operator may see
    them); card data and secrets always go."""
    obj = _to_plain(obj)
    if isinstance(obj, Mapping):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            shown, n, kind = _key_info(key)
            redacted: Any
            if kind is _Kind.PLAIN:  # the common case first, scalars without a recursive call
                if isinstance(value, str):
                    redacted = redact_text(value)
                elif value is None or isinstance(value, bool) or (isinstance(value, int) and abs(value) < 10**12):
                    redacted = value
                else:
                    redacted = redact_mapping(value, pii=pii)
            elif kind is _Kind.SAFE:
                redacted = value
            elif kind in (_Kind.PAN, _Kind.CARD, _Kind.CARD_SUBTREE):
                redacted = _mask_card_value(n, value)
            elif kind is _Kind.SECRET:
                redacted = None if value is None else MASK
            elif pii and kind in (_Kind.PII, _Kind.PII_SUBTREE):
                redacted = _mask_pii_value(value)
            else:
                redacted = redact_mapping(value, pii=pii)
            _put(out, shown, redacted)
        return out
    if isinstance(obj, _CONTAINERS):
        return _same_container(obj, [redact_mapping(v, pii=pii) for v in obj])
    return _redact_scalar(obj)


def redact_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenTelemetry attributes (flat, dotted keys; values are scalars or sequences of them)."""
    out: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        _, _, kind = _key_info(key)
        if kind is _Kind.SAFE:
            out[key] = value
        elif kind is _Kind.PAN:
            out[key] = mask_pan(str(value))
        elif kind in (_Kind.CARD, _Kind.CARD_SUBTREE, _Kind.SECRET, _Kind.PII):
            out[key] = MASK
        elif isinstance(value, list | tuple):
            out[key] = tuple(_redact_scalar(v) for v in value)
        else:
            out[key] = _redact_scalar(value)
    return out


def redact_exception(exc: BaseException) -> str:
    """``Type: message`` of an exception, redacted: for error responses and failure texts."""
    return redact_text(f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------- exceptions


class RedactedException(Exception):
    """Replaces a logged exception whose text had to be redacted (same type name)."""


class RedactedExceptionGroup(BaseExceptionGroup):
    """Replaces a logged exception group whose text (or a member's) had to be redacted."""


_redacted_types: dict[tuple[str, str, bool], type[BaseException]] = {}
_redacted_types_lock = threading.Lock()


def _stand_in_type(original: type[BaseException], *, group: bool = False) -> type[BaseException]:
    key = (original.__module__, original.__qualname__, group)
    with _redacted_types_lock:
        found = _redacted_types.get(key)
        if found is None:
            base: type[BaseException] = RedactedExceptionGroup if group else RedactedException
            found = type(original.__name__, (base,), {"__module__": original.__module__})
            found.__qualname__ = original.__qualname__
            _redacted_types[key] = found
    return found


def _exc_str(exc: BaseException) -> str | None:
    try:
        return str(exc)
    except Exception:  # traceback prints "<exception str() failed>": nothing leaks
        return None


def _safe_exception(exc: BaseException, memo: dict[int, BaseException | None]) -> BaseException | None:
    """``exc`` itself when nothing in it or in its chain (cause, context, group members,
    notes) needs redaction; else a stand-in of the same name with redacted texts whose
    chain is made of stand-ins too. The original is never modified (it may be re-raised)."""
    key = id(exc)
    if key in memo:
        return memo[key]
    memo[key] = None  # a cycle in the chain is cut here, as traceback does
    cause = _safe_exception(exc.__cause__, memo) if exc.__cause__ is not None else None
    context = _safe_exception(exc.__context__, memo) if exc.__context__ is not None else None
    originals: Sequence[BaseException] = exc.exceptions if isinstance(exc, BaseExceptionGroup) else ()
    members = [_safe_exception(m, memo) for m in originals]
    message = _exc_str(exc)
    safe_message = redact_text(message) if message is not None else None
    notes = getattr(exc, "__notes__", None)
    safe_notes = [redact_text(str(n)) for n in notes] if isinstance(notes, list) else None
    unchanged = (
        safe_message == message
        and cause is exc.__cause__
        and context is exc.__context__
        and all(m is o for m, o in zip(members, originals, strict=True))
        and safe_notes == notes
    )
    if unchanged:
        memo[key] = exc
        return exc
    text = safe_message if safe_message is not None else MASK
    stand_in: BaseException
    if isinstance(exc, BaseExceptionGroup):
        group_message = redact_text(exc.message)
        kept = [m for m in members if m is not None]
        stand_in = _stand_in_type(type(exc), group=True)(group_message, kept or [RedactedException(MASK)])
    else:
        stand_in = _stand_in_type(type(exc))(text)
    stand_in.__cause__ = cause
    stand_in.__context__ = context
    stand_in.__suppress_context__ = exc.__suppress_context__
    stand_in.__traceback__ = exc.__traceback__
    if safe_notes is not None:
        stand_in.__notes__ = safe_notes
    memo[key] = stand_in
    return stand_in


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def redact_exc_info(exc_info: ExcInfo) -> ExcInfo:
    """``exc_info`` safe to hand to any formatter: the same tuple when nothing in the
    exception or its chain needs redaction, else one with a redacted stand-in chain."""
    _, exc, tb = exc_info
    safe = _safe_exception(exc, {})
    if safe is None or safe is exc:
        return exc_info
    return type(safe), safe, tb


def redact_exc_text(exc_info: ExcInfo) -> str:
    """The traceback text of an exception with its whole chain, redacted (what a log shows)."""
    exc_type, exc, tb = exc_info
    return redact_text("".join(traceback.format_exception(exc_type, exc, tb)).rstrip("\n"))


# ---------------------------------------------------------------- logging


_STANDARD_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime", "taskName"}
)
_MARK = "_d1_redacted"
_EXTRAS_MARK = "_d1_redacted_extras"


def _redact_arg(arg: Any) -> Any:
    """One ``%`` argument, redacted in place: a string stays a string, a container keeps
    its type; an object or number is replaced by its redacted text only if that had card
    data (a ``%d`` argument that is a PAN cannot stay a number)."""
    if isinstance(arg, str):
        return redact_text(arg)
    plain = _to_plain(arg)
    if isinstance(plain, Mapping | list | tuple | set | frozenset):
        redacted = redact_mapping(plain)
        return arg if redacted == plain else redacted
    return _redact_scalar(arg)


def _format(msg: Any, args: Any) -> str | None:
    try:
        text = str(msg)
        return text % args if args else text
    except Exception:
        return None


def _redact_args(msg: Any, args: Any) -> tuple[Any, Any] | None:
    """``(msg, args)`` redacted with the shape of ``args`` kept, or None when that is not
    possible (a PAN given as a ``%d`` number, a template the redaction had to cut into)."""
    safe_msg = redact_text(msg) if isinstance(msg, str) else redact_text(str(msg))
    if isinstance(args, Mapping):
        slots: list[Any] = list(args.keys())
        values = [_redact_arg(args[k]) for k in slots]

        def build(vals: list[Any]) -> Any:
            return dict(zip(slots, vals, strict=True))
    elif isinstance(args, tuple):
        values = [_redact_arg(a) for a in args]

        def build(vals: list[Any]) -> Any:
            return tuple(vals)
    else:  # logging only makes tuples and mappings; anything else is flattened
        return None
    text = _format(safe_msg, build(values))
    if text is None:
        return None
    remaining = _findings(text)
    # What is left depends on the context: "cvv2=%s" with "8371" is only card data next to
    # its name. Mask each argument whose masking removes findings (usually one of them).
    for i in range(len(values)):
        if remaining == 0:
            break
        trial = [*values[:i], MASK, *values[i + 1 :]]
        trial_text = _format(safe_msg, build(trial))
        if trial_text is None:
            continue
        trial_findings = _findings(trial_text)
        if trial_findings < remaining:
            values, text, remaining = trial, trial_text, trial_findings
    if remaining or redact_text(text) != text:
        return None
    return safe_msg, build(values)


def _redact_message(record: logging.LogRecord) -> None:
    try:
        formatted: str | None = record.getMessage()
    except Exception:  # broken format call: logging reports it, with our redacted msg/args
        formatted = None
    if formatted is not None and redact_text(formatted) == formatted:
        return  # the hot path: nothing found, the record is untouched
    if record.args:
        shaped = _redact_args(record.msg, record.args)
        if shaped is not None:
            record.msg, record.args = shaped
            return
        if formatted is None:
            record.msg = redact_text(str(record.msg))
            record.args = tuple(_redact_arg(a) for a in record.args) if isinstance(record.args, tuple) else None
            return
    # Last resort (no arguments, or a PAN as a %d number): the message pre-formatted.
    if formatted is None:
        try:
            formatted = str(record.msg)
        except Exception:  # a message that cannot print: logging reports that, nothing leaks
            return
    record.msg, record.args = redact_text(formatted), None


def _redact_extras(record: logging.LogRecord) -> None:
    seen: set[str] | None = record.__dict__.get(_EXTRAS_MARK)
    for key, value in list(record.__dict__.items()):
        if key in _STANDARD_RECORD_ATTRS or key.startswith("_") or (seen is not None and key in seen):
            continue
        if isinstance(value, str):
            record.__dict__[key] = redact_text(value)
        elif isinstance(value, Mapping | list | tuple | set | frozenset) or hasattr(value, "model_dump"):
            record.__dict__[key] = redact_mapping(value)
        else:  # an object a format string prints with %(key)s: replaced only if its text had card data
            record.__dict__[key] = _redact_scalar(value)
        if seen is None:
            seen = set()
            record.__dict__[_EXTRAS_MARK] = seen
        seen.add(key)


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact one log record in place: message (arguments redacted one by one, shape kept,
    so formatters that read ``record.args``, such as uvicorn's access log, keep working),
    exception with its chain (``exc_text`` and ``exc_info``), stack text, and any ``extra=``
    attributes — also those added after an earlier call (logging sets ``extra=`` after the
    record factory ran; filters add attributes later still)."""
    if not getattr(record, _MARK, False):
        _redact_message(record)
        if record.exc_info and record.exc_info[1] is not None:
            exc_info: ExcInfo = record.exc_info  # type: ignore[assignment]
            record.exc_text = redact_exc_text(exc_info)
            record.exc_info = redact_exc_info(exc_info)
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        setattr(record, _MARK, True)
    _redact_extras(record)
    return record


class RedactingFilter(logging.Filter):
    """A ``logging.Filter`` for handlers: redacts each record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_install_lock = threading.Lock()
_FACTORY_MARK = "_d1_redacting_factory"


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Make every log record of this process pass redaction. Idempotent.

    Two hooks, because neither alone sees everything: the record factory redacts message,
    arguments and exception at creation (so handlers added later, e.g. by a test harness
    or an OpenTelemetry log bridge, only ever see redacted records); a
    :class:`RedactingFilter` on the root logger's handlers also covers ``extra=``
    attributes, which logging adds after the factory ran. Call it after configuring
    handlers (calling it again adds the filter to new handlers).
    """
    with _install_lock:
        current: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()
        if not getattr(current, _FACTORY_MARK, False):

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                return redact_record(current(*args, **kwargs))

            setattr(factory, _FACTORY_MARK, True)
            logging.setLogRecordFactory(factory)
        target = logger or logging.getLogger()
        for handler in target.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


# ---------------------------------------------------------------- OpenTelemetry


def _redacted_span(span: ReadableSpan) -> ReadableSpan:
    events = [
        Event(name=e.name, attributes=redact_attributes(e.attributes), timestamp=e.timestamp) for e in span.events
    ]
    status = span.status
    if status is not None and status.description:
        status = Status(status.status_code, redact_text(status.description))
    return ReadableSpan(
        name=redact_text(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=redact_attributes(span.attributes),
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingSpanExporter(SpanExporter):
    """Wraps any OpenTelemetry ``SpanExporter``: spans leave the process redacted
    (attributes, event attributes such as ``exception.message``, status text)."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([_redacted_span(s) for s in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


__all__ = [
    "MASK",
    "RedactedException",
    "RedactedExceptionGroup",
    "RedactingFilter",
    "RedactingSpanExporter",
    "install_log_redaction",
    "luhn_valid",
    "mask_pan",
    "redact_attributes",
    "redact_exc_info",
    "redact_exc_text",
    "redact_exception",
    "redact_mapping",
    "redact_record",
    "redact_text",
]
