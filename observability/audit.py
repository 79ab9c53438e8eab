"""The audit log: one JSON object per line per operator action, appended to ``AUDIT_LOG_FILE``.

The worker's workflows write the lines (workflows/audit.py, logger ``audit``); this module
gives them their file. The file is opened for appending only (``O_APPEND``: every line lands at
the end, whatever else writes to it), created 0600 because it names people and orders, and
never truncated or rotated by the process: archive it with a tool that renames it and have
the worker reopen it (restart). Each line is flushed as it is written. The lines also reach
the process's own log (the logger propagates), so a deployment without the file still has them.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from security.secret_files import warn_if_exposed
from settings import AuditSettings

AUDIT_LOGGER = "audit"  # the logger workflows/audit.py writes to


class AuditFormatter(logging.Formatter):
    """The entry the workflow built (``extra={"audit": ...}``), plus when the worker wrote it."""

    def format(self, record: logging.LogRecord) -> str:
        entry = getattr(record, "audit", None)
        doc = dict(entry) if isinstance(entry, dict) else {"message": record.getMessage()}
        doc["logged_at"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        return json.dumps(doc, default=str)


def open_append_only(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    warn_if_exposed(path)  # an existing file keeps its mode: say so if others can read it
    handler = logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))
    handler.setFormatter(AuditFormatter())
    return handler


def configure_audit_log(settings: AuditSettings | None = None) -> logging.Handler | None:
    """Send the ``audit`` logger to ``AUDIT_LOG_FILE`` (None: not set, the process log only)."""
    settings = settings or AuditSettings()
    logger = logging.getLogger(AUDIT_LOGGER)
    logger.setLevel(logging.INFO)  # audit lines are never filtered by the root level
    if settings.log_file is None:
        return None
    handler = open_append_only(settings.log_file)
    logger.addHandler(handler)
    return handler
