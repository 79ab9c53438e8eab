"""Every recorded history replays against today's workflow code.

Until the first release a workflow change re-records these histories (docs/upgrading.md);
from the first release on a failure here means a change would break executions already
running: make it replay-safe (``workflow.patched(...)`` or a new workflow type) instead
of editing the recorded file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from security.codec import load_codec
from temporal_client import data_converter
from tests.histories import HISTORIES_DIR, HISTORY_CODEC_KEYS
from worker import WORKFLOWS, workflow_runner

HISTORIES = sorted(HISTORIES_DIR.glob("*.history.json"))

# One history per scenario, recorded from the current code (tests/histories/test_record.py).
SCENARIOS = {
    "happy",
    "bulk",
    "canceled",
    "redirect-approved",
    "data-exception",
    "rejected",
    "reconciled",
    "d1-batch",
    "batch-card",
    "tracking-shipment",
}


def test_every_scenario_is_recorded_once() -> None:
    assert {p.name.removesuffix(".history.json") for p in HISTORIES} == SCENARIOS


def test_every_long_running_workflow_type_has_a_recorded_history() -> None:
    types = set()
    for path in HISTORIES:
        events = json.loads(path.read_text())["history"]["events"]
        types.add(events[0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])
    assert {"CardOrderWorkflow", "D1BatchSubmissionWorkflow", "CardTrackingWorkflow"} <= types, types


# Strict: the workflow modules sandboxed as the tests run them; not: shared, as the worker runs them.
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "worker"])
@pytest.mark.parametrize("path", HISTORIES, ids=[p.name for p in HISTORIES])
async def test_recorded_history_replays(path: Path, strict: bool) -> None:
    doc = json.loads(path.read_text())
    history = WorkflowHistory.from_json(doc["workflow_id"], doc["history"])
    replayer = Replayer(
        workflows=WORKFLOWS,
        workflow_runner=workflow_runner(strict=strict),
        data_converter=data_converter(load_codec(HISTORY_CODEC_KEYS)),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
