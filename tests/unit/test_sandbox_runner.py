"""The worker's sandbox runner reads a payload's serialization context without a trip into
the sandbox (worker.py ``SandboxRunner``), and gives the same answer as the SDK's own path."""

from __future__ import annotations

import json

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxRestrictions
from temporalio.worker.workflow_sandbox._runner import _Instance

from security.codec import load_codec
from temporal_client import data_converter
from tests.histories import HISTORIES_DIR, HISTORY_CODEC_KEYS
from worker import PASSTHROUGH_MODULES, WORKFLOWS, SandboxRunner


class _Capturing(SandboxRunner):
    def __init__(self) -> None:
        super().__init__(restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES))
        object.__setattr__(self, "instances", [])

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        instance = super().create_instance(det)
        self.instances.append(instance)  # type: ignore[attr-defined]
        return instance


async def test_the_context_is_read_directly_and_matches_the_sdks_path() -> None:
    doc = json.loads((HISTORIES_DIR / "happy.history.json").read_text())
    runner = _Capturing()
    replayer = Replayer(
        workflows=WORKFLOWS, workflow_runner=runner, data_converter=data_converter(load_codec(HISTORY_CODEC_KEYS))
    )
    # The codec refuses a payload bound to another workflow: a wrong context fails the replay.
    result = await replayer.replay_workflow(WorkflowHistory.from_json(doc["workflow_id"], doc["history"]))
    assert result.replay_failure is None
    instances = runner.instances  # type: ignore[attr-defined]
    assert instances and all(isinstance(i, _Instance) for i in instances)
    instance = instances[-1]
    # The shortcut is in place (an SDK upgrade that moves the hook fails here, not silently).
    assert "get_serialization_context" in vars(instance)
    direct = instance.get_serialization_context(None)
    stock = _Instance.get_serialization_context(instance, None)
    assert direct == stock
    assert getattr(direct, "workflow_id", None) == doc["workflow_id"]
