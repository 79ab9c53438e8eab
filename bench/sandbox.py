"""What the workflow sandbox costs the worker, per recorded order: ``python -m bench.sandbox``.

Replays recorded histories (tests/histories/, the product's codec and its test keys) through
four runners, interleaved for several rounds on one process, and reports the median CPU per
replayed history and its ratio to the stock sandbox of before (docs/benchmarks.md, "The
sandbox's price"):

* ``stock``: temporalio's sandbox with the product's pass-through modules, the workflow
  modules imported afresh for every run (the worker before this measure);
* ``direct-context``: the worker's runner (worker.py ``SandboxRunner``: a payload's
  serialization context read without a trip into the sandbox), workflow modules still
  imported per run (``workflow_runner(strict=True)``, as the tests run);
* ``worker``: the same with the workflow modules shared (``workflow_runner()``, as the
  worker runs);
* ``unsandboxed``: no sandbox at all, for scale only (the product does not run so).

A replay runs every activation of the order and encodes every completion, as a live worker
does, but no activity: it prices the workflow side alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from security.codec import load_codec
from temporal_client import data_converter
from worker import PASSTHROUGH_MODULES, WORKFLOWS, workflow_runner

HISTORIES = Path(__file__).resolve().parent.parent / "tests" / "histories"

RUNNERS: dict[str, Callable[[], WorkflowRunner]] = {
    "stock": lambda: SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    ),
    "direct-context": lambda: workflow_runner(strict=True),
    "worker": workflow_runner,
    "unsandboxed": UnsandboxedWorkflowRunner,
}


async def replay_cpu_ms(runner: WorkflowRunner, histories: list[WorkflowHistory], repeat: int) -> float:
    replayer = Replayer(
        workflows=WORKFLOWS,
        workflow_runner=runner,
        data_converter=data_converter(load_codec(HISTORIES / "codec-keys.test.json")),
    )

    async def stream() -> AsyncIterator[WorkflowHistory]:
        for _ in range(repeat):
            for history in histories:
                yield history

    started = time.process_time()
    async with replayer.workflow_replay_iterator(stream()) as results:
        async for result in results:
            if result.replay_failure is not None:
                raise result.replay_failure
    return (time.process_time() - started) / (repeat * len(histories)) * 1000


async def run(names: list[str], rounds: int, repeat: int) -> dict[str, object]:
    histories = []
    for name in names:
        doc = json.loads((HISTORIES / f"{name}.history.json").read_text())
        histories.append(WorkflowHistory.from_json(doc["workflow_id"], doc["history"]))
    samples: dict[str, list[float]] = {name: [] for name in RUNNERS}
    for _ in range(rounds):
        for name, make in RUNNERS.items():
            samples[name].append(await replay_cpu_ms(make(), histories, repeat))
    medians = {name: statistics.median(v) for name, v in samples.items()}
    return {
        "histories": names,
        "rounds": rounds,
        "replays_per_round": repeat * len(names),
        "cpu_ms_per_history": {k: round(v, 2) for k, v in medians.items()},
        "ratio_to_stock": {k: round(v / medians["stock"], 3) for k, v in medians.items()},
        "samples": {k: [round(x, 2) for x in v] for k, v in samples.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.sandbox", description=__doc__.splitlines()[0])
    p.add_argument("histories", nargs="*", default=["happy"], help="recorded scenarios (tests/histories)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeat", type=int, default=60, help="replays of each history per runner and round")
    a = p.parse_args()
    print(json.dumps(asyncio.run(run(a.histories, a.rounds, a.repeat)), indent=2))


if __name__ == "__main__":
    main()
