"""``python -m bench`` (``make bench``): the product against the engine's own ceiling.

Phases, all in one invocation on one local dev server:

1. baseline: N bare workflows of a real order's shape: one no-op activity, then the 9
   signals one at a time, each ``--pace-ms`` after the previous one was accepted, so
   each is its own workflow task (checked from the histories);
2. batched baseline: the same with the 9 signals back to back (the server folds them into
   fewer workflow tasks): the engine's ceiling when signals batch, for reference;
3. product: N full card orders (starter edge with the JWE, token, HTTPS submit to the
   emulator, then the order's 9 D1 notifications over HTTPS to the receiver, paced like
   the baseline's signals, signals, completion), wired like ``make run``: mutual TLS on
   both D1 hops, outbound OAuth, payload codec;
4. notifications: the receiver against direct signals, at a fixed rate and flat out;
5. profiles: py-spy on every process during a further product (and baseline) batch;
6. scale: many orders held open at once (the emulator captures their notifications),
   then released through the receiver until every order is closed;
7. D1 batch API: cards per second and D1 calls per 1,000 cards, batch against single-card
   submission;
8. intake: the issuer API over HTTPS against the Python API (bench/intake.py); ``--only
   intake`` runs this row alone (``--profile-intake``: with py-spy on the API process);
9. events: orders with webhooks on (a local consumer verifies every event) against events
   off, alternated (bench/events.py); ``--only events`` runs this row alone.

Results go to ``bench/results/latest.json`` and the generated blocks of
``docs/benchmarks.md``. ``--quick`` is a small smoke run; ``--scale-only --scale-orders
10000`` is the full scale run (too long for the default run's 10-minute budget on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

from bench import events, load, replicas, report
from bench.history import summarise
from bench.intake import intake_phase
from bench.probe import ProbeListener
from bench.procs import ISSUER_ID, PRODUCT_TASK_QUEUE, BenchStack, Meters, PhaseUsage, Usage, start_stack
from bench.profiling import Profiler
from bench.stats import latency_summary_ms, ratio, sum_present
from contracts.card_order import workflow_id as workflow_id_for
from security.codec import load_codec
from stack.samples import sample_order
from starter.api import CardOrders
from starter.d1_batches import BatchLimits

ROOT = Path(__file__).resolve().parent.parent

QUICK = {
    "orders": 40,
    "batched_orders": 40,
    "concurrency": 20,
    "rate_notifications": 200,
    "max_notifications": 300,
    "scale_orders": 300,
    "profile_orders": 40,
    "batch_cards": 100,
    "intake_orders": 100,
    "events_orders": 60,
}
DEFAULT = {
    "orders": 500,
    "batched_orders": 300,
    "concurrency": 80,
    "rate_notifications": 1000,
    "max_notifications": 1000,
    "scale_orders": 1000,
    "profile_orders": 100,
    "batch_cards": 400,
    "intake_orders": 400,
    "events_orders": 160,
}
# Where the last full scale run (10,000 open orders, its own command) left its numbers.
SCALE_FULL_JSON = ROOT / "bench" / "results" / "scale-10000.json"


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


async def orders_side(name: str, run: load.OrdersRun, usage: PhaseUsage, plain: Client, codec: Any) -> dict[str, Any]:
    hist = await summarise(plain, run.workflow_ids, codec)
    return {
        "orders": run.orders,
        "completed": len(run.workflow_ids),
        "errors": run.errors[:10],
        "error_count": len(run.errors),
        "outcomes": dict(run.outcomes),
        "wall_s": round(run.wall_s, 2),
        "orders_per_s": round(run.steady_per_s, 2),
        "orders_per_s_whole_run": round(run.per_s, 2),
        "client_latency": latency_summary_ms(run.client_latency_s),
        "start_to_shipped": latency_summary_ms(hist.start_to_shipped_s),
        "start_to_close": latency_summary_ms(hist.start_to_close_s),
        "history": {
            "events_per_order": round(hist.events_per_order, 1),
            "bytes_per_order": round(hist.bytes_per_order),
            "event_types_per_order": {k: round(v, 2) for k, v in hist.event_types_per_order.items()},
            "workflow_tasks_per_order": round(hist.workflow_tasks_per_order, 2),
            "signals_per_order": round(hist.signals_per_order, 2),
            "signals_per_signal_task": round(hist.signals_per_signal_task, 3),
            "orders_with_batched_signals": hist.orders_with_batched_signals,
        },
        "usage": side_usage(name, usage_per_1000(usage, len(run.workflow_ids))),
    }


def side_usage(side: str, usage: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The processes that serve one side, under common names (the baseline's worker is
    its own bare process; the baselines have no receiver or emulator)."""
    if side.startswith("baseline"):
        names = {"worker": "baseline_worker", "temporal": "temporal", "driver": "driver"}
    else:
        names = {n: n for n in ("worker", "events_worker", "receiver", "emulator", "temporal", "driver")}
    return {common: usage[real] for common, real in names.items() if real in usage}


def cost_breakdown(r: dict[str, Any]) -> dict[str, Any]:
    """Per order and per notification: where the product's extra cost goes against the
    honest baseline (same shape, same run)."""
    b, p = r["baseline"], r["product"]
    per_order = len(load.HAPPY_PATH)

    def cpu(side: dict[str, Any], proc: str) -> float | None:
        u = side["usage"].get(proc)
        return u["cpu_s_per_1000"] if u else None

    rows: dict[str, dict[str, float | None]] = {}
    # CPU s per 1,000 orders is CPU ms per order; the history figures are per order already.
    for key, bo, po in (
        ("temporal_cpu_ms", cpu(b, "temporal"), cpu(p, "temporal")),
        ("worker_cpu_ms", cpu(b, "worker"), sum_present(cpu(p, "worker"), cpu(p, "events_worker"))),
        ("receiver_cpu_ms", 0.0, cpu(p, "receiver")),
        ("driver_cpu_ms", cpu(b, "driver"), cpu(p, "driver")),
        ("history_events", b["history"]["events_per_order"], p["history"]["events_per_order"]),
        ("history_bytes", b["history"]["bytes_per_order"], p["history"]["bytes_per_order"]),
    ):
        extra = None if bo is None or po is None else po - bo
        rows[key] = {
            "baseline_per_order": _r(bo),
            "product_per_order": _r(po),
            "extra_per_order": _r(extra),
            "extra_per_notification": _r(extra / per_order if extra is not None else None),
            "ratio": ratio(po, bo) if bo else None,
        }
    edge = p.get("edge_cpu_ms_per_order")
    return {"per_order_notifications": per_order, "rows": rows, "edge_cpu_ms_per_order": edge}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def send_summary(res: load.SendResult, usage: PhaseUsage | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sent": res.sent,
        "wall_s": round(res.wall_s, 2),
        "per_s": round(res.per_s, 1),
        "latency": latency_summary_ms(res.latency_s),
        "failures": dict(res.failures),
    }
    if usage is not None and res.sent:
        rec = usage.processes["receiver"]
        out["receiver_cpu_s_per_1000"] = round(rec.cpu_s / res.sent * 1000, 2)
        out["usage"] = usage_per_1000(usage, res.sent)
    return out


def _split(items: list[str], parts: int) -> list[list[str]]:
    """``items`` in ``parts`` consecutive chunks of near-equal size."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def _add_send(total: load.SendResult, part: load.SendResult) -> None:
    total.sent += part.sent
    total.wall_s += part.wall_s
    total.latency_s.extend(part.latency_s)
    total.failures.update(part.failures)


def _add_usage(total: PhaseUsage | None, part: PhaseUsage) -> PhaseUsage:
    """One path's usage over its rounds: CPU summed, the highest peak, RSS from first to last."""
    if total is None:
        return part
    merged = PhaseUsage(wall_s=total.wall_s + part.wall_s)
    for name, u in part.processes.items():
        t = total.processes.get(name)
        merged.processes[name] = (
            u
            if t is None
            else Usage(
                cpu_s=t.cpu_s + u.cpu_s,
                rss_start_mib=t.rss_start_mib,
                rss_end_mib=u.rss_end_mib,
                peak_rss_mib=max(t.peak_rss_mib, u.peak_rss_mib),
            )
        )
    return merged


async def receiver_phase(
    stack: BenchStack, orders: CardOrders, client: Client, meters: Meters, tag: str, a: argparse.Namespace
) -> dict[str, Any]:
    """Receiver vs direct signals on the same kind of open orders, same notification bodies."""
    per_order = len(load.HAPPY_PATH)
    n_rate = -(-a.rate_notifications // per_order)
    n_max = -(-a.max_notifications // per_order)
    groups_wanted = {
        "rate_direct": n_rate,
        "rate_receiver": n_rate,
        "max_direct": n_max,
        "max_receiver": n_max,
        "max_receiver_bulk": n_max,
    }
    total = sum(groups_wanted.values())
    log(f"notifications: opening {total} held orders")
    rids = await load.submit_held(stack, orders, f"{tag}r", total, a.concurrency)
    captured = await load.captured_by_order(stack)
    await stack.emulator("POST", "/_emulator/faults", json={"captureNotifications": False})
    out: dict[str, Any] = {
        "open_orders": total,
        "rate": a.rate,
        "concurrency": a.send_concurrency,
        "bulk_ops": a.bulk_ops,
    }
    out["rounds"] = a.receiver_rounds
    receiver = load.ReceiverSender(stack.receiver_url, stack.notifier_ssl, stack.token_source())
    # The direct path signals as the receiver does (a notification sealed by any other role is refused).
    direct = load.direct_sender(await stack.local.connect(sealer="receiver"))
    senders: dict[str, load.Sender] = {"direct": direct, "receiver": receiver}
    # Each path's orders in rounds, the paths alternated within each round: a drift of the
    # shared machine's load (or of the server's database) then reaches every path alike.
    chunks: dict[str, list[list[str]]] = {}
    offset = 0
    for key, n in groups_wanted.items():
        chunks[key] = _split(rids[offset : offset + n], a.receiver_rounds)
        offset += n
    results: dict[str, load.SendResult] = {key: load.SendResult(sent=0, wall_s=0.0) for key in groups_wanted}
    usages: dict[str, PhaseUsage] = {}
    try:
        await receiver.warm(a.send_concurrency)
        for round_no in range(a.receiver_rounds):
            for key in groups_wanted:
                group_rids = chunks[key][round_no]
                bodies = load.interleaved([captured[r] for r in group_rids])
                prepared = load.prepare(bodies, a.bulk_ops if key.endswith("bulk") else 1)
                send = senders["direct" if "direct" in key else "receiver"]
                with meters.phase() as usage:
                    if key.startswith("rate"):
                        res = await load.send_at_rate(prepared, a.rate, send)
                    else:
                        res = await load.send_flat_out(prepared, a.send_concurrency, send)
                    await load.wait_closed(client, [workflow_id_for(ISSUER_ID, r) for r in group_rids])
                _add_send(results[key], res)
                usages[key] = _add_usage(usages.get(key), usage)
        for key, res in results.items():
            out[key] = send_summary(res, usages[key])
            log(
                f"notifications: {key}: {res.sent} at {res.per_s:.0f}/s in {a.receiver_rounds} rounds, p99 ack "
                f"{out[key]['latency']['p99_ms']} ms, failures {dict(res.failures)}"
            )
    finally:
        await receiver.aclose()
    out["ratio_rate"] = ratio(out["rate_receiver"]["per_s"], out["rate_direct"]["per_s"])
    out["ratio_p99_at_rate"] = ratio(out["rate_receiver"]["latency"]["p99_ms"], out["rate_direct"]["latency"]["p99_ms"])
    out["ratio_max"] = ratio(out["max_receiver"]["per_s"], out["max_direct"]["per_s"])
    out["ratio_bulk"] = ratio(out["max_receiver_bulk"]["per_s"], out["max_direct"]["per_s"])
    return out


async def scale_phase(
    stack: BenchStack, orders: CardOrders, client: Client, meters: Meters, tag: str, a: argparse.Namespace
) -> dict[str, Any]:
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
                log(
                    f"scale: {res.sent}/{released} notifications acknowledged in {elapsed:.0f} s "
                    f"({res.sent / elapsed:.0f}/s)"
                )
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
    """Every target of issue 14 as a ratio from this run (the scale target from the last full scale run)."""
    out = []

    def add(name: str, wanted: str, measured: Any, met: bool | None, *, scale: bool = False) -> None:
        out.append({"name": name, "wanted": wanted, "measured": measured, "met": met, "scale": scale})

    def at_most(value: float | None, limit: float) -> bool | None:
        return None if value is None else value <= limit

    def at_least(value: float | None, limit: float) -> bool | None:
        return None if value is None else value >= limit

    if "product" in r:
        b, p = r["baseline"], r["product"]
        for side, label in ((b, "baseline"), (p, "product")):
            h = side["history"]
            add(
                f"shape: signals per signal-carrying workflow task ({label})",
                "<= 1.05 (one task each)",
                h["signals_per_signal_task"],
                at_most(h["signals_per_signal_task"], 1.05),
            )
        tr = r["throughput_ratio"]
        add("product / baseline throughput (orders/s)", ">= 0.8", tr, at_least(tr, 0.8))
        rows = r["breakdown"]["rows"]
        sv = rows["temporal_cpu_ms"]["ratio"]
        add("Temporal server CPU per order, product / baseline", "<= 1.3", sv, at_most(sv, 1.3))
        wk = rows["worker_cpu_ms"]["ratio"]
        add("worker CPU per order, product / baseline worker", "<= 2", wk, at_most(wk, 2.0))
        rc_ms = r.get("receiver_cpu_ms_per_notification")
        add("receiver CPU per notification (product phase, ms)", "<= 2", rc_ms, at_most(rc_ms, 2.0))
        ev_b, ev_p = b["history"]["events_per_order"], p["history"]["events_per_order"]
        add("history events per order, product - baseline", "<= 10", round(ev_p - ev_b, 1), ev_p - ev_b <= 10)
        tok = p["token_requests_per_1000"]
        add("token requests / 1,000 orders", "<= 2", tok, at_most(tok, 2))
    rc = r.get("receiver")
    if rc:
        add("receiver / direct-signal rate (flat out)", ">= 0.9", rc["ratio_max"], at_least(rc["ratio_max"], 0.9))
        lat = rc.get("ratio_p99_at_rate")
        add(f"receiver p99 ack / direct p99 at {rc['rate']:g}/s", "<= 1.3", lat, at_most(lat, 1.3))
    sc = r.get("scale")
    if sc:
        peak = max(sc["worker_peak_open_mib"], sc["worker_peak_drain_mib"])
        # The target is about 10,000 open orders; a smaller run reports the peak without a verdict.
        add(
            f"worker peak RSS with {sc['orders']} open orders (MiB)",
            "< 1024 MiB at 10,000",
            peak,
            peak < 1024 if sc["orders"] >= 10_000 else None,
            scale=True,
        )
        add(f"all {sc['orders']} held orders drained after release", "yes", sc["drained"], sc["drained"], scale=True)
    it = r.get("intake")
    if it:
        add(
            "issuer API / Python API orders submitted per second",
            ">= 0.9",
            it["ratio_orders_per_s"],
            at_least(it["ratio_orders_per_s"], 0.9),
        )
        beyond = it["api_cpu_ms_beyond_edge"]
        add("issuer API process CPU per order beyond the edge's (ms)", "<= 3", beyond, at_most(beyond, 3.0))
    if r.get("events"):
        for name, wanted, measured, met in events.event_targets(r["events"]):
            add(name, wanted, measured, met)
    full = r.get("scale_full_last")
    if full:
        add(
            f"worker peak RSS with 10,000 open orders (MiB; last full scale run, {full['started_at'][:10]})",
            "< 1024",
            full["peak_mib"],
            full["peak_mib"] < 1024,
        )
    return out


def last_full_scale() -> dict[str, Any] | None:
    """The 10,000-order figure of the last full scale run (its own, longer command)."""
    try:
        doc = json.loads(SCALE_FULL_JSON.read_text())
        sc = doc["scale"]
        return {
            "started_at": doc["started_at"],
            "orders": sc["orders"],
            "peak_mib": max(sc["worker_peak_open_mib"], sc["worker_peak_drain_mib"]),
            "drained": sc["drained"],
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(results: dict[str, Any], a: argparse.Namespace, started: datetime, *, final: bool) -> None:
    """Write what is known so far: a run cut short (Ctrl-C, a time limit) still leaves its
    finished phases on disk; the doc is only rewritten by a finished run."""
    results["duration_s"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    results["complete"] = final
    results["targets"] = targets(results)
    report.write_json(results, a.json)
    if final and a.doc:
        report.write_doc(results, a.doc)


async def capture_templates(
    stack: BenchStack, orders: CardOrders, client: Client, tag: str
) -> load.NotificationTemplates:
    """The emulator's 9 notification bodies for one real happy-path order (captured, then
    delivered to the receiver so that this order, too, ends)."""
    rids = await load.submit_held(stack, orders, f"{tag}t", 1, 1)
    captured = await load.captured_by_order(stack)
    await stack.emulator("POST", "/_emulator/reset", json={})
    send = load.ReceiverSender(stack.receiver_url, stack.notifier_ssl, stack.token_source())
    try:
        for body in load.prepare(captured[rids[0]], parse=False):
            if (failure := await send(body)) is not None:
                raise RuntimeError(f"the receiver refused a captured notification: {failure}")
    finally:
        await send.aclose()
    await load.wait_closed(client, [workflow_id_for(ISSUER_ID, rids[0])])
    return load.NotificationTemplates(captured[rids[0]])


async def product_run(
    stack: BenchStack,
    orders: CardOrders,
    tag: str,
    n: int,
    a: argparse.Namespace,
    notifier: load.ReceiverSender | None,
    templates: load.NotificationTemplates,
    edge: load.EdgeCost | None = None,
) -> load.OrdersRun:
    """Product orders: the driver plays D1's notifier (the emulator drops its own), or, with
    ``--notifier emulator``, the emulator notifies at its step delay."""
    pace = a.pace_ms / 1000
    if notifier is not None:
        await stack.emulator("POST", "/_emulator/faults", json={"dropNotifications": True, "stepDelayMs": 0})
        return await load.run_product(
            orders,
            tag,
            n,
            a.concurrency,
            notify=notifier,
            templates=templates,
            pace_s=pace,
            edge_cost=edge,
            probe=probe_of(stack, a),
        )
    await stack.emulator("POST", "/_emulator/faults", json={"dropNotifications": False, "stepDelayMs": a.pace_ms})
    return await load.run_product(orders, tag, n, a.concurrency, edge_cost=edge)


def probe_of(stack: BenchStack, a: argparse.Namespace) -> ProbeListener | None:
    return stack.probe if a.wait_handled else None


async def main_phases(
    results: dict[str, Any],
    stack: BenchStack,
    clients: tuple[Client, Client, CardOrders],
    meters: Meters,
    tag: str,
    a: argparse.Namespace,
    started: datetime,
    templates: load.NotificationTemplates,
) -> None:
    plain, client, orders = clients
    codec = load_codec(stack.codec_keys)
    pace = a.pace_ms / 1000
    log(f"baseline: {a.orders} bare workflows, {a.concurrency} in flight, signals {a.pace_ms} ms apart")
    with meters.phase() as b_usage:
        b_run = await load.run_baseline(plain, tag, a.orders, a.concurrency, pace_s=pace, probe=probe_of(stack, a))
    log(f"baseline: {b_run.steady_per_s:.1f} orders/s, errors {len(b_run.errors)}")
    await wait_idle(meters, "baseline_worker")

    log(f"batched baseline: {a.batched_orders} bare workflows, signals back to back")
    with meters.phase() as q_usage:
        q_run = await load.run_baseline(plain, f"{tag}q", a.batched_orders, a.concurrency)
    log(f"batched baseline: {q_run.steady_per_s:.1f} orders/s, errors {len(q_run.errors)}")
    await wait_idle(meters, "baseline_worker")

    notifier = (
        load.ReceiverSender(stack.receiver_url, stack.notifier_ssl, stack.token_source())
        if a.notifier == "driver"
        else None
    )
    tokens_before = (await stack.emulator_stats())["tokenRequests"]
    log(
        f"product: {a.orders} card orders, {a.concurrency} in flight, notifications {a.pace_ms} ms apart "
        f"(sent by the {a.notifier})"
    )
    edge = load.EdgeCost()
    try:
        if notifier is not None:
            await notifier.warm(8)
        with meters.phase() as p_usage:
            p_run = await product_run(stack, orders, tag, a.orders, a, notifier, templates, edge)
        tokens = int((await stack.emulator_stats())["tokenRequests"]) - int(tokens_before)  # type: ignore[call-overload]
        log(f"product: {p_run.steady_per_s:.1f} orders/s, outcomes {dict(p_run.outcomes)}, errors {len(p_run.errors)}")
        await wait_idle(meters, "worker")

        log("reading histories")
        results["baseline"] = await orders_side("baseline", b_run, b_usage, plain, None)
        results["baseline_batched"] = await orders_side("baseline_batched", q_run, q_usage, plain, None)
        results["product"] = await orders_side("product", p_run, p_usage, plain, codec)
        pr = results["product"]
        pr["token_requests"] = tokens
        done = len(p_run.workflow_ids)
        pr["token_requests_per_1000"] = round(tokens / done * 1000, 2) if done else None
        pr["edge_cpu_ms_per_order"] = round(edge.cpu_s / edge.orders * 1000, 2) if edge.orders else None
        pr["notifier"] = a.notifier
        results["probe_timeouts"] = stack.probe.timeouts if stack.probe is not None else None
        notifications = len(p_run.workflow_ids) * len(load.HAPPY_PATH)
        rec = pr["usage"].get("receiver")
        results["receiver_cpu_ms_per_notification"] = (
            round(rec["cpu_s"] / notifications * 1000, 2) if rec and notifications else None
        )
        results["throughput_ratio"] = ratio(p_run.steady_per_s, b_run.steady_per_s)
        results["throughput_ratio_batched"] = ratio(p_run.steady_per_s, q_run.steady_per_s)
        results["breakdown"] = cost_breakdown(results)
        # On a CPU-bound machine throughput follows CPU per order; the emulator's share is D1's.
        b_cpu = sum(u["cpu_s_per_1000"] for u in results["baseline"]["usage"].values())
        p_cpu = sum(u["cpu_s_per_1000"] for u in pr["usage"].values())
        p_cpu_own = p_cpu - pr["usage"].get("emulator", {}).get("cpu_s_per_1000", 0.0)
        results["cpu_s_per_1000"] = {
            "baseline": round(b_cpu, 1),
            "product": round(p_cpu, 1),
            "product_without_d1_standin": round(p_cpu_own, 1),
        }
        results["cpu_cost_ratio"] = ratio(b_cpu, p_cpu)
        results["cpu_cost_ratio_without_d1_standin"] = ratio(b_cpu, p_cpu_own)
        log(
            f"throughput ratio product/baseline: {results['throughput_ratio']} "
            f"(against the batched baseline {results['throughput_ratio_batched']}); signals per signal task: "
            f"baseline {results['baseline']['history']['signals_per_signal_task']}, "
            f"product {pr['history']['signals_per_signal_task']}"
        )
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
            for name, pid in (
                ("worker", stack.pids["worker"]),
                ("receiver", stack.pids["receiver"]),
                ("emulator", stack.pids["emulator"]),
                ("driver", os.getpid()),
            ):
                prof.start(name, pid)
            await asyncio.sleep(1.0)  # let py-spy attach
            await product_run(stack, orders, f"{tag}x", a.profile_orders, a, notifier, templates)
            profiles = prof.stop()
            log(f"profiles: baseline ({a.profile_orders} orders)")
            prof.start("baseline_worker", stack.pids["baseline_worker"])
            await asyncio.sleep(1.0)
            await load.run_baseline(
                plain, f"{tag}x", a.profile_orders, a.concurrency, pace_s=pace, probe=probe_of(stack, a)
            )
            profiles.update(prof.stop())
            results["profiles"] = profiles
            save(results, a, started, final=False)
    finally:
        if notifier is not None:
            await notifier.aclose()
        await stack.emulator("POST", "/_emulator/faults", json={"dropNotifications": False, "stepDelayMs": 0})


async def _submit_one(orders: CardOrders, prepared: Any) -> None:
    await orders.submit_prepared(prepared)


async def batch_phase(
    stack: BenchStack, orders: CardOrders, meters: Meters, tag: str, a: argparse.Namespace
) -> dict[str, Any]:
    """D1's batch "Order cards" API against single-card submission, same cards, same run.

    Each path submits ``batch_cards`` orders (prepared at the edge first, as a batch file is)
    while the emulator drops their notifications (only submission is measured) and ends when
    the emulator has accepted every card; D1 calls are the emulator's own counters."""
    out: dict[str, Any] = {"cards": a.batch_cards, "batch_size": a.batch_size, "concurrency": a.concurrency}
    for path in ("single", "batch"):
        await stack.emulator("POST", "/_emulator/reset", json={})
        await stack.emulator("POST", "/_emulator/faults", json={"dropNotifications": True, "stepDelayMs": 0})
        rids = [f"{tag}{path[0]}-{i:06d}" for i in range(a.batch_cards)]
        with meters.phase() as usage:
            t0 = time.perf_counter()
            prepared = [orders.edge.prepare(sample_order(rid), timing=orders.timing) for rid in rids]
            if path == "batch":
                results = await orders.start_many(
                    prepared, d1_batches=BatchLimits(max_cards=a.batch_size), concurrency=a.concurrency
                )
                problems = sum(r.submitted is None for r in results)
            else:
                await load.closed_loop(
                    len(prepared), a.concurrency, lambda i, batch=prepared: _submit_one(orders, batch[i])
                )
                problems = 0
            while True:
                stats = await stack.emulator_stats()
                accepted = len(stats["submissions"])  # type: ignore[arg-type]
                if accepted >= a.batch_cards or time.perf_counter() - t0 > 300:
                    break
                await asyncio.sleep(0.2)
            wall = time.perf_counter() - t0
        calls = int(stats["orderRequests"]) + int(stats["batchRequests"])  # type: ignore[call-overload]
        out[path] = {
            "accepted": accepted,
            "problems": problems,
            "wall_s": round(wall, 2),
            "cards_per_s": round(accepted / wall, 1) if wall else None,
            "order_requests": stats["orderRequests"],
            "batch_requests": stats["batchRequests"],
            "token_requests": stats["tokenRequests"],
            "d1_calls_per_1000_cards": round(calls / accepted * 1000, 1) if accepted else None,
            "usage": usage_per_1000(usage, accepted or 1),
        }
        log(f"D1 batch row: {path}: {accepted} cards in {wall:.1f} s ({accepted / wall:.1f}/s), D1 calls {calls}")
    out["ratio_cards_per_s"] = ratio(out["batch"]["cards_per_s"], out["single"]["cards_per_s"])
    return out


async def run(a: argparse.Namespace) -> int:
    if a.replicas:
        return await replicas.run(a)
    started = datetime.now(UTC)
    tag = secrets.token_hex(3)
    state_dir: Path = a.state_dir / started.strftime("%Y%m%d-%H%M%S")
    log(f"starting the stack; logs, database and raw profiles in {state_dir}")
    stack = await start_stack(
        state_dir,
        db=a.db,
        transport_mode=a.transport,
        worker_bytecode=a.worker_bytecode,
        events_process=not a.events_inline,
        dynamic_config=a.dynamic_config,
    )
    results: dict[str, Any] = {
        "command": a.command,
        "started_at": started.isoformat(timespec="seconds"),
        "machine": report.machine(),
        "params": {k: v for k, v in vars(a).items() if k not in ("command", "state_dir", "json", "doc")},
        "state_dir": str(state_dir),
        "scale_full_last": last_full_scale(),
    }
    try:
        plain = await Client.connect(stack.temporal_address)
        client = await stack.local.connect(sealer="edge")  # orders are started by the issuer edge
        orders = CardOrders(
            client, task_queue=PRODUCT_TASK_QUEUE, timing=stack.local.order_timing(), edge=stack.local.order_edge()
        )
        meters = Meters({**stack.pids, "driver": os.getpid()})

        log("warm-up (not measured)")
        templates = await capture_templates(stack, orders, client, tag)
        await load.run_baseline(plain, f"{tag}w", a.warmup, a.concurrency)
        await load.run_baseline(
            plain, f"{tag}v", a.warmup, a.concurrency, pace_s=a.pace_ms / 1000, probe=probe_of(stack, a)
        )
        await load.run_product(orders, f"{tag}w", a.warmup, a.concurrency)
        await wait_idle(meters, "worker")

        if not a.scale_only and a.only is None:
            await main_phases(results, stack, (plain, client, orders), meters, tag, a, started, templates)
        if a.scale_orders and not a.skip_scale and a.only is None:
            results["scale"] = await scale_phase(stack, orders, client, meters, tag, a)
            save(results, a, started, final=False)
        if a.batch_cards and not a.skip_batch and not a.scale_only and a.only is None:
            results["d1_batch"] = await batch_phase(stack, orders, meters, tag, a)
        if a.intake_orders and not a.skip_intake and not a.scale_only and a.only in (None, "intake"):
            log(f"intake row: {a.intake_orders} orders through the Python API, then through the issuer API")
            prof = Profiler(stack.state_dir / "profiles" / "intake") if a.profile_intake else None
            results["intake"] = await intake_phase(
                stack, orders, meters, tag, a.intake_orders, a.concurrency, profiler=prof
            )
            i = results["intake"]
            log(
                f"intake row: Python API {i['python']['orders_per_s']}/s, issuer API {i['https']['orders_per_s']}/s, "
                f"API CPU {i['https']['api_cpu_ms_per_order']} ms/order"
            )
            save(results, a, started, final=False)
        if a.events_orders and not a.skip_events and not a.scale_only and a.only in (None, "events"):
            t0 = time.perf_counter()
            results["events"] = await events.events_phase(
                stack, client, plain, load_codec(stack.codec_keys), templates, tag, a, log, probe_of(stack, a)
            )
            results["events"]["row_s"] = round(time.perf_counter() - t0, 1)
            e = results["events"]
            log(
                f"events row ({e['row_s']} s): on {e['on']['orders_per_s']}/s, off {e['off']['orders_per_s']}/s "
                f"(ratio {e['throughput_ratio']}), lag p99 {e['on']['lag']['p99_ms']} ms, "
                f"delivery {'complete' if e['delivery']['ok'] else 'INCOMPLETE'}"
            )
    finally:
        log("stopping the stack")
        stack.stop()
        save(results, a, started, final=False)
    save(results, a, started, final=True)
    print(report.markdown(results))
    log(f"wrote {a.json}" + (f" and {a.doc}" if a.doc else ""))
    if "events" in results and not results["events"]["delivery"]["ok"]:
        log("FAILED: the events row's consumer did not verify every event (see `events.delivery`)")
        return 1
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small smoke run (about a minute)")
    p.add_argument("--orders", type=int, help="orders per side (baseline and product)")
    p.add_argument("--batched-orders", type=int, help="orders of the batched baseline (signals back to back)")
    p.add_argument("--concurrency", type=int, help="orders in flight")
    p.add_argument(
        "--pace-ms",
        type=int,
        default=100,
        help="the real order's shape: each signal / notification this long after the worker handled "
        "the previous one (each its own workflow task; checked from history)",
    )
    p.add_argument(
        "--no-wait-handled",
        dest="wait_handled",
        action="store_false",
        help="pace from the previous signal's acknowledgement only (no probe): under load the "
        "server then folds paced signals into fewer tasks",
    )
    p.add_argument(
        "--notifier",
        choices=["driver", "emulator"],
        default="driver",
        help="who sends the product's notifications: the driver, paced like the baseline's signals "
        "(D1's sending cost outside the product's processes), or the emulator at its step delay",
    )
    p.add_argument("--warmup", type=int, default=20, help="orders per side before measuring")
    p.add_argument("--rate", type=float, default=150.0, help="notifications/s for the fixed-rate test")
    p.add_argument("--rate-notifications", type=int, help="notifications per path at the fixed rate")
    p.add_argument("--max-notifications", type=int, help="notifications per path, flat out")
    p.add_argument("--send-concurrency", type=int, default=32, help="senders in the flat-out test")
    p.add_argument(
        "--receiver-rounds", type=int, default=3, help="rounds of the notification paths, alternated within each round"
    )
    p.add_argument("--bulk-ops", type=int, default=10, help="operations per body in the bulk test")
    p.add_argument("--scale-orders", type=int, help="orders held open at once in the scale run")
    p.add_argument("--release-concurrency", type=int, default=100, help="order streams released in parallel")
    p.add_argument("--profile-orders", type=int, help="orders per side while profiling")
    p.add_argument("--skip-receiver", action="store_true")
    p.add_argument("--skip-profile", action="store_true")
    p.add_argument("--skip-scale", action="store_true")
    p.add_argument("--skip-batch", action="store_true")
    p.add_argument("--batch-cards", type=int, help="cards per path in the D1 batch row (0: skip)")
    p.add_argument("--batch-size", type=int, default=100, help="cards per D1 batch call in the batch row")
    p.add_argument("--skip-intake", action="store_true")
    p.add_argument("--intake-orders", type=int, help="orders per path in the intake row (0: skip)")
    p.add_argument("--skip-events", action="store_true")
    p.add_argument("--events-orders", type=int, help="orders per side in the events row (0: skip)")
    p.add_argument("--events-rounds", type=int, default=2, help="rounds of the events row, sides alternated")
    p.add_argument("--events-concurrency", type=int, default=40, help="orders in flight in the events row")
    p.add_argument(
        "--events-inline",
        action="store_true",
        help="run the hubs and deliveries in the orders' worker (EVENTS_WORKER=inline), not in a process of their own",
    )
    p.add_argument("--only", choices=["intake", "events"], help="after the warm-up, only this row")
    p.add_argument(
        "--profile-intake", action="store_true", help="py-spy on the issuer API during the intake row's HTTPS path"
    )
    p.add_argument("--scale-only", action="store_true", help="only the scale run (e.g. with --scale-orders 10000)")
    p.add_argument(
        "--drain-limit-s",
        type=float,
        default=600.0,
        help="stop waiting for the scale drain after this long (reported as not drained)",
    )
    p.add_argument(
        "--transport",
        choices=["mtls", "plain"],
        default="mtls",
        help="mtls: both D1 hops over mutual TLS + outbound OAuth, as make run; plain: HTTP (dev flags)",
    )
    p.add_argument(
        "--worker-bytecode",
        action="store_true",
        help="experiment: let the workers cache bytecode although PYTHONDONTWRITEBYTECODE is set",
    )
    replicas.add_arguments(p, ROOT / "bench" / "results")
    p.add_argument("--db", choices=["file", "memory"], default="file", help="dev server persistence")
    p.add_argument(
        "--dynamic-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a dynamic config value for the dev server (repeatable), e.g. matching.numTaskqueueReadPartitions=1",
    )
    # Outside the work tree on purpose: `make clean` elsewhere must not pull the floor from under a run.
    p.add_argument("--state-dir", type=Path, default=Path(tempfile.gettempdir()) / "d1-bench")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    p.add_argument(
        "--doc",
        default=str(ROOT / "docs" / "benchmarks.md"),
        help="markdown file whose results block is rewritten ('' for none)",
    )
    a = p.parse_args(argv)
    preset = QUICK if a.quick else DEFAULT
    for key, value in preset.items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    if a.quick and str(a.json) == str(ROOT / "bench" / "results" / "latest.json"):
        a.json = Path(tempfile.gettempdir()) / "d1-bench" / "quick.json"  # a smoke run is not a result
        a.doc = None  # a smoke run never overwrites the documented numbers
    if a.only and str(a.json) == str(ROOT / "bench" / "results" / "latest.json"):
        a.json = ROOT / "bench" / "results" / f"{a.only}.json"  # one row: latest.json stays a whole run's
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
