"""Log records, redacted as the text they print.

A record whose formatted message holds card data gets the redacted message as its ``msg``
(and no arguments); one whose traceback does gets the redacted traceback as its
``exc_text`` and loses ``exc_info`` (the live exception still holds the clear text, and
any formatter could print it again). ``logging.Formatter`` prints ``exc_text`` as it is. A
record with nothing to mask is left as it was, arguments and all (uvicorn's access
formatter unpacks them). ``extra=`` attributes are redacted as values
(security/redaction/values.py), also those added after an earlier pass.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from security.redaction.text import redact_text
from security.redaction.values import redact_mapping, redact_scalar

_STANDARD_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime", "taskName"}
)
_MARK = "_d1_redacted"
_EXTRAS_MARK = "_d1_redacted_extras"


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # an object that cannot print cannot leak through str() either
        return f"<{type(value).__name__} that cannot print>"


def _redact_message(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format call: its parts are logged as text instead
        message = f"{_text(record.msg)} (arguments: {_text(record.args)})"
    else:
        if redact_text(message) == message:
            return  # the hot path: nothing found, the record is untouched
    record.msg, record.args = redact_text(message), ()


def _redact_exception(record: logging.LogRecord) -> None:
    if record.exc_info and record.exc_info[1] is not None:
        exc_type, exc, tb = record.exc_info
        clear = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip("\n")
        record.exc_text = redact_text(clear)
        if record.exc_text != clear:
            record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact_text(record.exc_text)


def _redact_extras(record: logging.LogRecord) -> None:
    seen: set[str] = record.__dict__.get(_EXTRAS_MARK) or set()
    for key, value in list(record.__dict__.items()):
        if key in _STANDARD_RECORD_ATTRS or key.startswith("_") or key in seen:
            continue
        if isinstance(value, str):
            record.__dict__[key] = redact_text(value)
        elif isinstance(value, Mapping | list | tuple | set | frozenset) or hasattr(value, "model_dump"):
            record.__dict__[key] = redact_mapping(value)
        else:  # an object a format string prints with %(key)s: replaced only if its text had card data
            record.__dict__[key] = redact_scalar(value)
        seen.add(key)
    if seen:
        record.__dict__[_EXTRAS_MARK] = seen


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact one log record in place: message, traceback with its chain, stack text, and
    any ``extra=`` attributes, also those added after an earlier call (logging sets
    ``extra=`` after the record factory ran; filters add attributes later still)."""
    if not getattr(record, _MARK, False):
        _redact_message(record)
        _redact_exception(record)
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

    Two hooks, because neither alone sees everything: the record factory redacts message
    and exception at creation (so handlers added later, e.g. by a test harness or an
    OpenTelemetry log bridge, only ever see redacted records); a :class:`RedactingFilter`
    on the root logger's handlers also covers ``extra=`` attributes, which logging adds
    after the factory ran. Call it after configuring handlers (calling it again adds the
    filter to new handlers).
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
