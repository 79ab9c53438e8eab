"""``python -m bench`` (``make bench``): the product against the engine's own ceiling.

Phases, all in one invocation on one local dev server:

1. baseline: N bare workflows (one no-op activity, 9 signals from the client, done);
2. product: N full card orders (starter, token, JWE, HTTPS submit to the emulator,
   emulator notifications over HTTPS to the receiver, signals, completion), wired like
   ``make run``: mutual TLS on both D1 hops, outbound OAuth, payload codec;
3. notifications: the receiver against direct signals, at a fixed rate and flat out;
4. profiles: py-spy on every process during a further product (and baseline) batch;
5. scale: many orders held open at once (the emulator captures their notifications),
   then released through the receiver until every order is closed.

Results go to ``bench/results/latest.json`` and the generated blocks of
``docs/benchmarks.md``. ``--quick`` is a small smoke run; ``--scale-only --scale-orders
10000`` is the full scale run (too long for the default run's 10-minute budget on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shlex
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench import load, report
from bench.history import summarise
from bench.procs import ISSUER_ID, PRODUCT_TASK_QUEUE, BenchStack, Meters, PhaseUsage, start_stack
from bench.profiling import Profiler
from bench.stats import latency_summary_ms, ratio
from contracts.card_order import workflow_id as workflow_id_for
from security.codec import load_codec
from starter.api import CardOrders

ROOT = Path(__file__).resolve().parent.parent

QUICK = {"orders": 40, "concurrency": 20, "rate_notifications": 200, "max_notifications": 300,
         "scale_orders": 300, "profile_orders": 40}
DEFAULT = {"orders": 500, "concurrency": 50, "rate_notifications": 1000, "max_notifications": 1000,
           "scale_orders": 1000, "profile_orders": 100}


def log(msg: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def usage_per_1000(usage: PhaseUsage, units: int) -> dict[str, dict[str, float]]:
    return {
        name: {
            "cpu_s": round(u.cpu_s, 2),
            "cpu_s_per_1000": round(u.cpu_s / units * 1000, 2) if units else 0.0,
            "peak_rss_mib": round(u.peak_rss_mib, 1),
            "rss_growth_mib": round(u.rss_end_mib - u.rss_start_mib, 1),
        }
        for name, u in usage.processes.items()
    }


async def orders_side(name: str, run: load.OrdersRun, usage: PhaseUsage, plain: Client,
                      codec: Any) -> dict[str, Any]:
    hist = await summarise(plain, run.workflow_ids, codec)
    return {
        "orders": run.orders,
        "completed": len(run.workflow_ids),
        "errors": run.errors[:10],
        "error_count": len(run.errors),
        "outcomes": dict(run.outcomes),
        "wall_s": round(run.wall_s, 2),
        "orders_per_s": round(run.per_s, 2),
        "client_latency": latency_summary_ms(run.client_latency_s),
        "start_to_shipped": latency_summary_ms(hist.start_to_shipped_s),
        "start_to_close": latency_summary_ms(hist.start_to_close_s),
        "history": {
            "events_per_order": round(hist.events_per_order, 1),
            "bytes_per_order": round(hist.bytes_per_order),
            "event_types_per_order": {k: round(v, 2) for k, v in hist.event_types_per_order.items()},
        },
        "usage": side_usage(name, usage_per_1000(usage, len(run.workflow_ids))),
    }


def side_usage(side: str, usage: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The processes that serve one side, under common names (the baseline's worker is
    its own bare process; the baseline has no receiver or emulator)."""
    if side == "baseline":
        names = {"worker": "baseline_worker", "temporal": "temporal", "driver": "driver"}
    else:
        names = {n: n for n in ("worker", "receiver", "emulator", "temporal", "driver")}
    return {common: usage[real] for common, real in names.items() if real in usage}


def send_summary(res: load.SendResult, usage: PhaseUsage | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sent": res.sent, "wall_s": round(res.wall_s, 2), "per_s": round(res.per_s, 1),
        "latency": latency_summary_ms(res.latency_s), "failures": dict(res.failures),
    }
    if usage is not None and res.sent:
        rec = usage.processes["receiver"]
        out["receiver_cpu_s_per_1000"] = round(rec.cpu_s / res.sent * 1000, 2)
        out["usage"] = usage_per_1000(usage, res.sent)
    return out


async def receiver_phase(stack: BenchStack, orders: CardOrders, client: Client, meters: Meters, tag: str,
                         a: argparse.Namespace) -> dict[str, Any]:
    """Receiver vs direct signals on the same kind of open orders, same notification bodies."""
    per_order = len(load.HAPPY_PATH)
    n_rate = -(-a.rate_notifications // per_order)
    n_max = -(-a.max_notifications // per_order)
    groups_wanted = {"rate_direct": n_rate, "rate_receiver": n_rate, "max_direct": n_max, "max_receiver": n_max,
                     "max_receiver_bulk": n_max}
    total = sum(groups_wanted.values())
    log(f"notifications: opening {total} held orders")
    rids = await load.submit_held(stack, orders, f"{tag}r", total, a.concurrency)
    captured = await load.captured_by_order(stack)
    await stack.emulator("POST", "/_emulator/faults", json={"captureNotifications": False})
    out: dict[str, Any] = {"open_orders": total, "rate": a.rate, "concurrency": a.send_concurrency,
                           "bulk_ops": a.bulk_ops}
    offset = 0
    receiver = load.ReceiverSender(stack.receiver_url, stack.notifier_ssl, stack.token_source())
    senders: dict[str, load.Sender] = {"direct": load.direct_sender(client), "receiver": receiver}
    try:
        await receiver.warm(a.send_concurrency)
        for key, n in groups_wanted.items():
            group_rids = rids[offset:offset + n]
            offset += n
            bodies = load.interleaved([captured[r] for r in group_rids])
            prepared = load.prepare(bodies, a.bulk_ops if key.endswith("bulk") else 1)
            send = senders["direct" if "direct" in key else "receiver"]
            with meters.phase() as usage:
                if key.startswith("rate"):
                    res = await load.send_at_rate(prepared, a.rate, send)
                else:
                    res = await load.send_flat_out(prepared, a.send_concurrency, send)
                await load.wait_closed(client, [workflow_id_for(ISSUER_ID, r) for r in group_rids])
            out[key] = send_summary(res, usage)
            log(f"notifications: {key}: {res.sent} at {res.per_s:.0f}/s, p99 ack "
                f"{out[key]['latency']['p99_ms']} ms, failures {dict(res.failures)}")
    finally:
        await receiver.aclose()
    out["ratio_rate"] = ratio(out["rate_receiver"]["per_s"], out["rate_direct"]["per_s"])
    out["ratio_max"] = ratio(out["max_receiver"]["per_s"], out["max_direct"]["per_s"])
    out["ratio_bulk"] = ratio(out["max_receiver_bulk"]["per_s"], out["max_direct"]["per_s"])
    return out


async def scale_phase(stack: BenchStack, orders: CardOrders, client: Client, meters: Meters, tag: str,
                      a: argparse.Namespace) -> dict[str, Any]:
    """Hold ``scale_orders`` open at once, then release every notification and time the drain."""
    worker = meters.meters["worker"]
    curve: list[tuple[int, float]] = []

    def progress(done: int) -> None:
        curve.append((done, round(worker.rss_mib(), 1)))
        log(f"scale: {done} orders submitted, worker RSS {worker.rss_mib():.0f} MiB")

    log(f"scale: submitting {a.scale_orders} orders, notifications held by the emulator")
    with meters.phase() as open_usage:
        t0 = time.perf_counter()
        rids = await load.submit_held(stack, orders, f"{tag}s", a.scale_orders, a.concurrency, progress)
        submit_s = time.perf_counter() - t0
        await wait_idle(meters, "worker")
    held = await load.count_open(client)
    rss_held = worker.rss_mib()
    captured = await load.captured_by_order(stack)
    await stack.emulator("POST", "/_emulator/faults", json={"captureNotifications": False})
    groups = [load.prepare(captured[r], parse=False) for r in rids]
    released = sum(len(g) for g in groups)
    log(f"scale: {held} open, worker RSS {rss_held:.0f} MiB; releasing {released} notifications")
    send = load.ReceiverSender(stack.receiver_url, stack.notifier_ssl, stack.token_source())
    try:
        await send.warm(a.release_concurrency)
        with meters.phase() as drain_usage:
            t0 = time.perf_counter()
            deadline = t0 + a.drain_limit_s
            res = load.SendResult(sent=0, wall_s=0.0)
            sending = asyncio.create_task(load.send_per_order_fifo(groups, a.release_concurrency, send, res))
            while not sending.done() and time.perf_counter() < deadline:
                await asyncio.wait([sending], timeout=15)
                elapsed = time.perf_counter() - t0
                log(f"scale: {res.sent}/{released} notifications acknowledged in {elapsed:.0f} s "
                    f"({res.sent / elapsed:.0f}/s)")
            if not sending.done():
                sending.cancel()
                await asyncio.gather(sending, return_exceptions=True)
            while (still_open := await load.count_open(client)) > 0 and time.perf_counter() < deadline:
                log(f"scale: notifications acknowledged, {still_open} orders still open")
                await asyncio.sleep(1.0)
            drain_s = time.perf_counter() - t0
    finally:
        await send.aclose()
    log(f"scale: drained in {drain_s:.1f} s ({released / drain_s:.0f} notifications/s)")
    return {
        "orders": a.scale_orders,
        "drained": still_open == 0,
        "still_open": still_open,
        "drain_limit_s": a.drain_limit_s,
        "open_when_held": held,
        "submit_s": round(submit_s, 1),
        "submit_per_s": round(a.scale_orders / submit_s, 1),
        "worker_rss_held_mib": round(rss_held, 1),
        "worker_peak_open_mib": round(open_usage.processes["worker"].peak_rss_mib, 1),
        "worker_peak_drain_mib": round(drain_usage.processes["worker"].peak_rss_mib, 1),
        "rss_curve": curve,
        "released": released,
        "acknowledged": res.sent,
        "release_concurrency": a.release_concurrency,
        "drain_s": round(drain_s, 1),
        "drain_notifications_per_s": round(released / drain_s, 1),
        "drain_ack": latency_summary_ms(res.latency_s),
        "failures": dict(res.failures),
        "usage_open": usage_per_1000(open_usage, a.scale_orders),
        "usage_drain": usage_per_1000(drain_usage, a.scale_orders),
    }


async def wait_idle(meters: Meters, name: str, quiet_cpu_s: float = 0.05, limit_s: float = 600) -> None:
    """Until the process spends (almost) no CPU for a second: its backlog is done."""
    proc = meters.meters[name]._proc
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = sum(proc.cpu_times()[:2])
        await asyncio.sleep(1.0)
        if sum(proc.cpu_times()[:2]) - before < quiet_cpu_s:
            return


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    out = []

    def add(name: str, wanted: str, measured: Any, met: bool | None) -> None:
        out.append({"name": name, "wanted": wanted, "measured": measured, "met": met})

    if "product" in r:
        tr = r["throughput_ratio"]
        add("product / baseline throughput", ">= 0.75", tr, tr is not None and tr >= 0.75)
    rc = r.get("receiver")
    if rc:
        add("receiver / direct-signal rate (flat out)", ">= 0.8", rc["ratio_max"],
            rc["ratio_max"] is not None and rc["ratio_max"] >= 0.8)
        p99 = rc["rate_receiver"]["latency"]["p99_ms"]
        add(f"receiver p99 ack at {rc['rate']}/s", "< 50 ms", p99, p99 is not None and p99 < 50)
    if "product" in r:
        tok = r["product"]["token_requests_per_1000"]
        add("token requests / 1,000 orders", "<= 2", tok, tok is not None and tok <= 2)
        ev = r["product"]["history"]["events_per_order"]
        add("history events / happy-path order", "<= 40", ev, ev <= 40)
    sc = r.get("scale")
    if sc:
        peak = max(sc["worker_peak_open_mib"], sc["worker_peak_drain_mib"])
        # The target is about 10,000 open orders; a smaller run reports the peak without a verdict.
        add(f"worker peak RSS with {sc['orders']} open orders", "< 1024 MiB at 10,000", peak,
            peak < 1024 if sc["orders"] >= 10_000 else None)
        add(f"all {sc['orders']} held orders drained after release", "yes", sc["drained"], sc["drained"])
    return out


def save(results: dict[str, Any], a: argparse.Namespace, started: datetime, *, final: bool) -> None:
    """Write what is known so far: a run cut short (Ctrl-C, a time limit) still leaves its
    finished phases on disk; the doc is only rewritten by a finished run."""
    results["duration_s"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    results["complete"] = final
    results["targets"] = targets(results)
    report.write_json(results, a.json)
    if final and a.doc:
        report.write_doc(results, a.doc)


async def main_phases(results: dict[str, Any], stack: BenchStack, clients: tuple[Client, Client, CardOrders],
                      meters: Meters, tag: str, a: argparse.Namespace, started: datetime) -> None:
    plain, client, orders = clients
    codec = load_codec(stack.codec_keys)
    log(f"baseline: {a.orders} bare workflows, {a.concurrency} in flight")
    with meters.phase() as b_usage:
        b_run = await load.run_baseline(plain, tag, a.orders, a.concurrency)
    log(f"baseline: {b_run.per_s:.1f} orders/s, errors {len(b_run.errors)}")
    await wait_idle(meters, "baseline_worker")

    tokens_before = (await stack.emulator_stats())["tokenRequests"]
    log(f"product: {a.orders} card orders, {a.concurrency} in flight")
    with meters.phase() as p_usage:
        p_run = await load.run_product(orders, tag, a.orders, a.concurrency)
    tokens = int((await stack.emulator_stats())["tokenRequests"]) - int(tokens_before)  # type: ignore[call-overload]
    log(f"product: {p_run.per_s:.1f} orders/s, outcomes {dict(p_run.outcomes)}, errors {len(p_run.errors)}")
    await wait_idle(meters, "worker")

    log("reading histories")
    results["baseline"] = await orders_side("baseline", b_run, b_usage, plain, codec)
    results["product"] = await orders_side("product", p_run, p_usage, plain, codec)
    results["product"]["token_requests"] = tokens
    results["product"]["token_requests_per_1000"] = (
        round(tokens / len(p_run.workflow_ids) * 1000, 2) if p_run.workflow_ids else None
    )
    results["throughput_ratio"] = ratio(p_run.per_s, b_run.per_s)
    # On a CPU-bound machine throughput follows CPU per order; the emulator's share is D1's,
    # which a real deployment does not pay, so the ratio is also given without it.
    b_cpu = sum(u["cpu_s_per_1000"] for u in results["baseline"]["usage"].values())
    p_cpu = sum(u["cpu_s_per_1000"] for u in results["product"]["usage"].values())
    p_cpu_own = p_cpu - results["product"]["usage"].get("emulator", {}).get("cpu_s_per_1000", 0.0)
    results["cpu_s_per_1000"] = {"baseline": round(b_cpu, 1), "product": round(p_cpu, 1),
                                 "product_without_d1_standin": round(p_cpu_own, 1)}
    results["cpu_cost_ratio"] = ratio(b_cpu, p_cpu)
    results["cpu_cost_ratio_without_d1_standin"] = ratio(b_cpu, p_cpu_own)
    log(f"throughput ratio product/baseline: {results['throughput_ratio']}; CPU-cost ratio "
        f"{results['cpu_cost_ratio']} ({results['cpu_cost_ratio_without_d1_standin']} without the emulator)")
    save(results, a, started, final=False)

    if not a.skip_receiver:
        results["receiver"] = await receiver_phase(stack, orders, client, meters, tag, a)
        save(results, a, started, final=False)

    if a.profile_orders and not a.skip_profile:
        prof = Profiler(stack.state_dir / "profiles")
        if not prof.available:
            log("profiles: py-spy not installed; skipped (pip install -e '.[dev]')")
            return
        log(f"profiles: product ({a.profile_orders} orders) with py-spy on every process")
        for name, pid in (("worker", stack.pids["worker"]), ("receiver", stack.pids["receiver"]),
                          ("emulator", stack.pids["emulator"]), ("driver", os.getpid())):
            prof.start(name, pid)
        await asyncio.sleep(1.0)  # let py-spy attach
        await load.run_product(orders, f"{tag}x", a.profile_orders, a.concurrency)
        profiles = prof.stop()
        log(f"profiles: baseline ({a.profile_orders} orders)")
        prof.start("baseline_worker", stack.pids["baseline_worker"])
        await asyncio.sleep(1.0)
        await load.run_baseline(plain, f"{tag}x", a.profile_orders, a.concurrency)
        profiles.update(prof.stop())
        results["profiles"] = profiles
        save(results, a, started, final=False)


async def run(a: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    tag = secrets.token_hex(3)
    state_dir: Path = a.state_dir / started.strftime("%Y%m%d-%H%M%S")
    log(f"starting the stack; logs, database and raw profiles in {state_dir}")
    stack = await start_stack(state_dir, db=a.db, transport_mode=a.transport, worker_bytecode=a.worker_bytecode)
    results: dict[str, Any] = {
        "command": a.command, "started_at": started.isoformat(timespec="seconds"), "machine": report.machine(),
        "params": {k: v for k, v in vars(a).items() if k not in ("command", "state_dir", "json", "doc")},
        "state_dir": str(state_dir),
    }
    try:
        plain = await Client.connect(stack.temporal_address)
        client = await stack.local.connect()
        orders = CardOrders(client, task_queue=PRODUCT_TASK_QUEUE, timing=stack.local.order_timing(),
                            edge=stack.local.order_edge())
        meters = Meters({**stack.pids, "driver": os.getpid()})

        log("warm-up (not measured)")
        await load.run_baseline(plain, f"{tag}w", a.warmup, a.concurrency)
        await load.run_product(orders, f"{tag}w", a.warmup, a.concurrency)
        await wait_idle(meters, "worker")

        if not a.scale_only:
            await main_phases(results, stack, (plain, client, orders), meters, tag, a, started)
        if a.scale_orders and not a.skip_scale:
            results["scale"] = await scale_phase(stack, orders, client, meters, tag, a)
    finally:
        log("stopping the stack")
        stack.stop()
        save(results, a, started, final=False)
    save(results, a, started, final=True)
    print(report.markdown(results))
    log(f"wrote {a.json}" + (f" and {a.doc}" if a.doc else ""))
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small smoke run (about a minute)")
    p.add_argument("--orders", type=int, help="orders per side (baseline and product)")
    p.add_argument("--concurrency", type=int, help="orders in flight")
    p.add_argument("--warmup", type=int, default=20, help="orders per side before measuring")
    p.add_argument("--rate", type=float, default=200.0, help="notifications/s for the fixed-rate test")
    p.add_argument("--rate-notifications", type=int, help="notifications per path at the fixed rate")
    p.add_argument("--max-notifications", type=int, help="notifications per path, flat out")
    p.add_argument("--send-concurrency", type=int, default=32, help="senders in the flat-out test")
    p.add_argument("--bulk-ops", type=int, default=10, help="operations per body in the bulk test")
    p.add_argument("--scale-orders", type=int, help="orders held open at once in the scale run")
    p.add_argument("--release-concurrency", type=int, default=100, help="order streams released in parallel")
    p.add_argument("--profile-orders", type=int, help="orders per side while profiling")
    p.add_argument("--skip-receiver", action="store_true")
    p.add_argument("--skip-profile", action="store_true")
    p.add_argument("--skip-scale", action="store_true")
    p.add_argument("--scale-only", action="store_true", help="only the scale run (e.g. with --scale-orders 10000)")
    p.add_argument("--drain-limit-s", type=float, default=600.0,
                   help="stop waiting for the scale drain after this long (reported as not drained)")
    p.add_argument("--transport", choices=["mtls", "plain"], default="mtls",
                   help="mtls: both D1 hops over mutual TLS + outbound OAuth, as make run; plain: HTTP (dev flags)")
    p.add_argument("--worker-bytecode", action="store_true",
                   help="experiment: let the workers cache bytecode although PYTHONDONTWRITEBYTECODE is set")
    p.add_argument("--db", choices=["file", "memory"], default="file", help="dev server persistence")
    # Outside the work tree on purpose: `make clean` elsewhere must not pull the floor from under a run.
    p.add_argument("--state-dir", type=Path, default=Path(tempfile.gettempdir()) / "d1-bench")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    p.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"),
                   help="markdown file whose results block is rewritten ('' for none)")
    a = p.parse_args(argv)
    preset = QUICK if a.quick else DEFAULT
    for key, value in preset.items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    if a.quick and str(a.json) == str(ROOT / "bench" / "results" / "latest.json"):
        a.json = Path(tempfile.gettempdir()) / "d1-bench" / "quick.json"  # a smoke run is not a result
        a.doc = None  # a smoke run never overwrites the documented numbers
    a.doc = Path(a.doc) if a.doc else None
    args = shlex.join(argv if argv is not None else sys.argv[1:])
    a.command = f"python -m bench {args}".rstrip() + ("" if args else "  (make bench)")
    return a


def main() -> int:
    args = parse()
    # SIGTERM (a time limit, a supervisor) ends the run like Ctrl-C: stack stopped, partial results saved.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
