"""The audit log file (observability/audit.py): JSON lines, appended, 0600."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from observability import audit
from settings import AuditSettings
from workflows import audit as workflow_audit


@pytest.fixture
def audit_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger(audit.AUDIT_LOGGER)
    before = list(logger.handlers)
    yield logger
    for handler in logger.handlers:
        if handler not in before:
            logger.removeHandler(handler)
            handler.close()


def test_the_workflows_write_to_the_logger_the_worker_configures() -> None:
    assert workflow_audit.AUDIT_LOGGER == audit.AUDIT_LOGGER


def test_each_action_is_one_json_line_appended_to_a_private_file(tmp_path: Path, audit_logger: logging.Logger) -> None:
    path = tmp_path / "audit" / "actions.jsonl"
    path.parent.mkdir()
    path.write_text('{"earlier": "line"}\n')
    path.chmod(0o600)
    handler = audit.configure_audit_log(AuditSettings(log_file=path))
    assert handler is not None
    entry = {
        "at": "2026-12-07T09:00:00+00:00",
        "who": "operator:alice",
        "action": "redirect",
        "result": "AWAITING_APPROVAL",
    }
    audit_logger.info("redirect by operator:alice", extra={"audit": entry})
    audit_logger.info("cancel by operator:bob", extra={"audit": {**entry, "who": "operator:bob", "action": "cancel"}})
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"earlier": "line"}  # appended, never truncated
    assert [(x["who"], x["action"]) for x in lines[1:]] == [("operator:alice", "redirect"), ("operator:bob", "cancel")]
    assert all(x["logged_at"] for x in lines[1:])


def test_a_new_file_is_created_0600(tmp_path: Path, audit_logger: logging.Logger) -> None:
    path = tmp_path / "new" / "audit.jsonl"
    audit.configure_audit_log(AuditSettings(log_file=path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_without_a_file_the_lines_stay_in_the_process_log(audit_logger: logging.Logger) -> None:
    assert audit.configure_audit_log(AuditSettings(log_file=None)) is None
    assert audit_logger.propagate and audit_logger.isEnabledFor(logging.INFO)
