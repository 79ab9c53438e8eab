"""Every recorded history replays against today's workflow code.

A failure here means a change to CardOrderWorkflow would break orders already running in
production: guard the change with ``workflow.patched(...)`` (or ship a new workflow type)
instead of editing the recorded file. See README, "Upgrading the workflow safely".
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


SCENARIOS = {"happy", "rejected", "canceled", "bulk", "reconciled", "data-exception"}
# The shapes of orders still possibly running: before the one-step-submit patch, after it
# (both with the clear order as input), card data encrypted at the edge ("edge"), and the
# current one (edge encryption plus the fewer-upserts patch, workflows/follow_up.py).
SHAPES = ("two-step", "one-step", "edge", "")


def test_the_representative_scenarios_are_recorded_in_every_shape() -> None:
    recorded = {p.name.removesuffix(".history.json") for p in HISTORIES}
    for shape in SHAPES:
        assert {f"{s}.{shape}" if shape else s for s in SCENARIOS} <= recorded, shape


def test_every_long_running_workflow_type_has_a_recorded_history() -> None:
    types = set()
    for path in HISTORIES:
        events = json.loads(path.read_text())["history"]["events"]
        types.add(events[0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])
    assert {"CardOrderWorkflow", "D1BatchSubmissionWorkflow", "CardTrackingWorkflow"} <= types, types


@pytest.mark.parametrize("path", HISTORIES, ids=[p.name for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    doc = json.loads(path.read_text())
    history = WorkflowHistory.from_json(doc["workflow_id"], doc["history"])
    replayer = Replayer(
        workflows=WORKFLOWS,
        workflow_runner=workflow_runner(),
        data_converter=data_converter(load_codec(HISTORY_CODEC_KEYS)),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
