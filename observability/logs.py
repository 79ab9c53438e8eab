"""Structured logs: every line says which order (workflow id) and which trace it belongs to.

``TELEMETRY_LOG_FORMAT`` is ``json`` (one object per line, docs/operations.md) or ``text``
(default). Records pass ``security.redaction.install_log_redaction`` before any handler, and
both formatters redact again (idempotent), message and whole traceback chain as text, so a
handler set up without the filter cannot print card data either. The workflow id comes
from Temporal's logger extras, else the running activity, else :func:`bind_workflow_id`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from observability.tracing import current_trace_id
from security.redaction import install_log_redaction, redact_record
from settings import TelemetrySettings

_workflow_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("d1_log_workflow_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [wf=%(workflow_id)s trace=%(trace_id)s] %(message)s"


LOG_SAFE_LIMIT = 64


def log_safe(value: object, *, limit: int = LOG_SAFE_LIMIT) -> str:
    """A value from outside (a URL path's ``issuerId``, a header) fit for a log line: control
    and line/paragraph-separator characters escaped (``\\n``, ``\\x1b``, ``\\u2028``), so it
    cannot forge a line, and at most ``limit`` characters, the rest counted."""
    text = str(value)
    cut = text[:limit]
    escaped = "".join(
        ch if unicodedata.category(ch) not in _UNPRINTABLE else ch.encode("unicode_escape").decode("ascii")
        for ch in cut
    )
    return escaped if len(text) <= limit else f"{escaped}...(+{len(text) - limit} chars)"


_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


@contextmanager
def bind_workflow_id(workflow_id: str | None) -> Iterator[None]:
    token = _workflow_id.set(workflow_id)
    try:
        yield
    finally:
        _workflow_id.reset(token)


def _workflow_id_of(record: logging.LogRecord) -> str | None:
    for extra in ("temporal_workflow", "temporal_activity"):
        info = getattr(record, extra, None)
        if isinstance(info, dict) and info.get("workflow_id"):
            return str(info["workflow_id"])
    if activity.in_activity():
        return activity.info().workflow_id
    return _workflow_id.get()


class ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "workflow_id"):
            record.workflow_id = _workflow_id_of(record) or "-"
        if not hasattr(record, "trace_id"):
            record.trace_id = current_trace_id() or "-"
        record.service = self.service
        return True


class TextFormatter(logging.Formatter):
    """``logging.Formatter`` whose records pass the redaction layer first (it prints the
    redacted traceback the record then carries as ``exc_text``)."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(redact_record(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        redact_record(record)
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": getattr(record, "service", None),
            "workflow_id": _dash_to_none(getattr(record, "workflow_id", None)),
            "trace_id": _dash_to_none(getattr(record, "trace_id", None)),
        }
        activity_info = getattr(record, "temporal_activity", None)
        if isinstance(activity_info, dict) and activity_info.get("activity_type"):
            doc["activity"] = activity_info["activity_type"]
        # The redacted traceback with its chain (redact_record wrote it); exc_info, when the
        # record still has it, held nothing to redact.
        if record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        return json.dumps(doc, default=str)


def _dash_to_none(value: object) -> object:
    return None if value in (None, "-") else value


def configure_logging(settings: TelemetrySettings, service: str) -> logging.Handler:
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter(service))
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    install_log_redaction()
    return handler
