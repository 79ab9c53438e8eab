"""The engine's ceiling: a bare workflow of the same shape as a card order.

One activity that does nothing, then as many signals as a happy-path order receives
notifications (sent directly by a client), then completion. Default worker options,
default data converter, no codec, no search-attribute upserts: whatever the product
spends beyond this is the product's own cost.

``python -m bench.baseline --address HOST:PORT --task-queue Q [--probe HOST:PORT]`` runs
its worker in a process of its own, so its CPU and memory are measured like the product
worker's; ``--probe`` adds the same signal probe as the product worker's (bench/probe.py).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Interceptor, Worker

WORKFLOW_NAME = "BenchBaselineWorkflow"
SIGNAL_NAME = "update"


@activity.defn(name="bench_noop")
async def noop() -> None:
    """Stands in for encrypt + submit: the engine's cost of one activity round trip."""


@workflow.defn(name=WORKFLOW_NAME)
class BaselineWorkflow:
    @workflow.init
    def __init__(self, expected_signals: int) -> None:
        self._received = 0

    @workflow.signal(name=SIGNAL_NAME)
    def update(self, body: dict[str, Any]) -> None:
        self._received += 1

    @workflow.run
    async def run(self, expected_signals: int) -> int:
        await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=30))
        await workflow.wait_condition(lambda: self._received >= expected_signals)
        return self._received


async def _main(address: str, task_queue: str, probe: str | None) -> None:
    # Imported here, not at the top: the sandbox re-imports this module for every new
    # workflow (as it does the product's workflow module), and the probe is no part of it.
    from bench.probe import SignalProbe, parse_address

    client = await Client.connect(address)
    interceptors: list[Interceptor] = [SignalProbe(parse_address(probe))] if probe else []
    worker = Worker(
        client, task_queue=task_queue, workflows=[BaselineWorkflow], activities=[noop], interceptors=interceptors
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        await stop.wait()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__.splitlines()[0])
    p.add_argument("--address", required=True)
    p.add_argument("--task-queue", required=True)
    p.add_argument("--probe", help="HOST:PORT of the driver's probe listener")
    args = p.parse_args()
    asyncio.run(_main(args.address, args.task_queue, args.probe))


if __name__ == "__main__":
    main()
