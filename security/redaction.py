"""One redaction layer for everything that leaves a process in clear: log records,
exception texts, OpenTelemetry span attributes, query results and codec-server output.

Card data (PAN, expiry, CVV/CVC, PVV, tracks, PIN) must never appear outside the JWE and
the encrypted Temporal payloads; names and addresses (PII) must not reach logs. Two
independent nets catch it:

* **field names** — a value under a key such as ``pan``, ``exp``, ``cvv2``, ``pvv``,
  ``track2``, ``cardData`` or ``trackData`` is masked (PAN: first 6 / last 4; all else
  fully); PII keys (``name``, ``firstName``, ``line1``, ``zipCode``, … and everything under
  ``deliveryAddress``) are masked unless the caller opts out (``pii=False``); credentials
  (``authorization``, ``access_token``, ``client_secret``, ``assertion``, …) always are.
  ``encryptedData`` is ciphertext and stays as it is.
* **shapes in free text** — Luhn-valid runs of 13-19 digits (also with single spaces or
  dashes between digits), magnetic-stripe track layouts, ``key=value`` / ``"key": value``
  pairs for the card keys above, and ``Bearer``/``Basic`` credentials.

Public API (other packages, e.g. ``observability/``, call these): :func:`redact_text`,
:func:`redact_mapping`, :class:`RedactingFilter`, :func:`install_log_redaction`,
:func:`redact_attributes`, :class:`RedactingSpanExporter`, :func:`redact_exception`.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from d1.order import luhn_valid

MASK = "***"

# ---------------------------------------------------------------- field names


def _norm(key: str) -> str:
    """``card_data``, ``cardData``, ``card-data`` and ``d1.cardData`` all become ``carddata``."""
    return key.rsplit(".", 1)[-1].replace("_", "").replace("-", "").lower()


_PAN_KEYS = frozenset({"pan", "primaryaccountnumber", "cardnumber", "accountnumber"})
_CARD_KEYS = frozenset(
    {"exp", "expiry", "expirydate", "expirationdate", "pvv", "pin", "pinblock", "csc", "cvc", "cvc2", "cvv"}
)
_CARD_PREFIXES = ("cvv", "cvc")
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


def _card_key(n: str) -> bool:
    if n in _SAFE_KEYS:
        return False
    return n in _CARD_KEYS or n.startswith(_CARD_PREFIXES) or _TRACK_KEY.match(n) is not None


def mask_pan(value: str) -> str:
    """First 6 / last 4 of the digits (PCI DSS display rule); short values fully masked."""
    digits = re.sub(r"[^0-9]", "", value)
    if len(digits) < 13:
        return MASK
    return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"


# ---------------------------------------------------------------- free text




_PAN_RUN = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
# Track 1: %B<PAN>^<NAME>^<YYMM><service code><discretionary>?   Track 2: ;<PAN>=<YYMM>...?
_TRACK1 = re.compile(r"%?B[0-9]{12,19}\^[^^\n\"']{0,26}\^[0-9]{4}[^\s\"',}?]*\??")
_TRACK2 = re.compile(r";?(?<![0-9])[0-9]{12,19}[=D][0-9]{4}[0-9]*\??")
_KEYS_ALT = r"pan|cvv[0-9]?|cvc[0-9]?|csc|pvv|pin|exp|expiry|expirydate"
_NUMERIC_KV = re.compile(
    r"(?i)(?P<key>\b(?:" + _KEYS_ALT + r")\b[\"']?\s*[:=]\s*[\"']?)(?P<value>[0-9](?:[0-9 -]*[0-9])?)"
)
_TRACK_KV = re.compile(r"(?i)(?P<key>\btrack(?:[0-9]|data)?\b[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\"',}\s]+)")
_SECRET_KV = re.compile(
    r"(?i)(?P<key>\b(?:access_token|refresh_token|client_secret|assertion|password)\b[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<value>[^\"',}\s&]+)"
)
_AUTH_SCHEME = re.compile(r"(?i)\b(?P<scheme>bearer|basic)\s+(?P<value>[A-Za-z0-9._~+/=-]{8,})")


def _mask_pan_run(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"[^0-9]", "", text)
    return mask_pan(digits) if luhn_valid(digits) else text


def redact_text(text: str) -> str:
    """Mask card data, PAN-shaped numbers and credentials in free text."""
    if not text:
        return text
    text = _TRACK1.sub(MASK, text)
    text = _TRACK2.sub(MASK, text)
    text = _TRACK_KV.sub(lambda m: m["key"] + MASK, text)
    text = _NUMERIC_KV.sub(
        lambda m: m["key"] + (mask_pan(m["value"]) if m["key"].lower().startswith("pan") else MASK), text
    )
    text = _SECRET_KV.sub(lambda m: m["key"] + MASK, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m['scheme']} {MASK}", text)
    return _PAN_RUN.sub(_mask_pan_run, text)


# ---------------------------------------------------------------- structures


def _mask_card_value(key_norm: str | None, value: Any) -> Any:
    """A value that is card data as a whole: a PAN keeps first 6 / last 4, the rest goes."""
    if isinstance(value, Mapping):
        return {k: _mask_card_value(_norm(str(k)), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_card_value(key_norm, v) for v in value]
    if value is None:
        return None
    if key_norm in _PAN_KEYS:
        return mask_pan(str(value))
    return MASK


def _mask_pii_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _mask_pii_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_pii_value(v) for v in value]
    return None if value is None else MASK


def _to_plain(obj: Any) -> Any:
    """pydantic models and dataclasses as plain JSON-like data (anything else unchanged)."""
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
    """A redacted copy of a JSON-like structure (dicts, lists, strings, numbers; pydantic
    models and dataclasses are dumped first). ``pii=False`` leaves names and addresses
    visible (an authenticated operator may see them); card data and secrets always go."""
    obj = _to_plain(obj)
    if isinstance(obj, Mapping):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            n = _norm(str(key))
            if n in _SAFE_KEYS:
                out[key] = value
            elif n in _PAN_KEYS or _card_key(n) or n in _CARD_SUBTREES:
                out[key] = _mask_card_value(n, value)
            elif n in _SECRET_KEYS:
                out[key] = None if value is None else MASK
            elif pii and (n in _PII_KEYS or n in _PII_SUBTREES):
                out[key] = _mask_pii_value(value)
            else:
                out[key] = redact_mapping(value, pii=pii)
        return out
    if isinstance(obj, list | tuple):
        return [redact_mapping(v, pii=pii) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, int) and not isinstance(obj, bool) and obj >= 10**12:
        redacted = redact_text(str(obj))
        return obj if redacted == str(obj) else redacted
    return obj


def redact_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenTelemetry attributes (flat, dotted keys; values are scalars or sequences of them)."""
    out: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        n = _norm(key)
        if n in _SAFE_KEYS:
            out[key] = value
        elif n in _PAN_KEYS:
            out[key] = mask_pan(str(value))
        elif _card_key(n) or n in _CARD_SUBTREES or n in _SECRET_KEYS or n in _PII_KEYS:
            out[key] = MASK
        elif isinstance(value, str):
            out[key] = redact_text(value)
        elif isinstance(value, list | tuple):
            out[key] = tuple(redact_text(v) if isinstance(v, str) else v for v in value)
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 10**12:
            redacted = redact_text(str(value))
            out[key] = value if redacted == str(value) else redacted
        else:
            out[key] = value
    return out


def redact_exception(exc: BaseException) -> str:
    """``Type: message`` of an exception, redacted: for error responses and failure texts."""
    return redact_text(f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------- logging


class RedactedException(Exception):
    """Replaces a logged exception whose text had to be redacted (same type name)."""


_redacted_types: dict[tuple[str, str], type[RedactedException]] = {}
_redacted_types_lock = threading.Lock()


def _stand_in_type(original: type[BaseException]) -> type[RedactedException]:
    key = (original.__module__, original.__qualname__)
    with _redacted_types_lock:
        found = _redacted_types.get(key)
        if found is None:
            found = type(original.__name__, (RedactedException,), {"__module__": original.__module__})
            found.__qualname__ = original.__qualname__
            _redacted_types[key] = found
    return found


_STANDARD_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime", "taskName"}
)
_MARK = "_d1_redacted"


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact one log record in place: message (arguments kept when nothing was found, so
    formatters that read ``record.args``, such as uvicorn's access log, keep working),
    exception and stack texts, and any ``extra=`` attributes."""
    if getattr(record, _MARK, False):
        return record
    try:
        formatted = record.getMessage()
    except Exception:  # a broken format string is logging's problem, not ours
        formatted = None
    if formatted is not None:
        redacted = redact_text(formatted)
        if redacted != formatted:
            record.msg, record.args = redacted, None
    if record.exc_info and record.exc_info[1] is not None:
        exc_type, exc, tb = record.exc_info
        text = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip("\n")
        record.exc_text = redact_text(text)
        message = str(exc)
        safe = redact_text(message)
        if safe != message and exc_type is not None:
            stand_in = _stand_in_type(exc_type)
            record.exc_info = (stand_in, stand_in(safe), tb)
    elif record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    for key, value in list(record.__dict__.items()):
        if key in _STANDARD_RECORD_ATTRS or key.startswith("_"):
            continue
        if isinstance(value, str):
            record.__dict__[key] = redact_text(value)
        elif isinstance(value, Mapping | list | tuple) or hasattr(value, "model_dump"):
            record.__dict__[key] = redact_mapping(value)
    setattr(record, _MARK, True)
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
    "RedactingFilter",
    "RedactingSpanExporter",
    "install_log_redaction",
    "luhn_valid",
    "mask_pan",
    "redact_attributes",
    "redact_exception",
    "redact_mapping",
    "redact_record",
    "redact_text",
]
