"""The events row of ``make bench``: card orders with webhooks on against the same orders with
events off, in the same run, and what the events cost each order.

*On*: the orders announce their milestones (``OrderTiming.events``), the worker signals them
to the issuer's hub (events/hub.py) and the hub delivers them to an endpoint registered
like any bank's: a local consumer in its own process (``python -m bench.events consumer``),
which verifies each request with the `standardwebhooks` library, de-duplicates by event id
and keeps, per event, when it verified it. *Off*: the same orders started with
``events=False``, which announce nothing (no emit marker, no hub, no delivery): what
``ORDER_EVENTS=false`` gives. Both sides are the product phase's orders (the driver plays
D1's notifier, paced by the worker's probe), in rounds that alternate the sides (on, off,
then off, on, ...) so that a drift of the shared machine reaches both alike.

The row fails loudly (``complete`` false, an error in the log, a missed target and a
non-zero exit) unless the consumer verified every event the hub numbered while the *on*
orders ran, each order the same number of events, each card's in order.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import httpx
from temporalio.client import Client

from bench import load
from bench.history import summarise
from bench.probe import ProbeListener
from bench.procs import ISSUER_ID, PRODUCT_TASK_QUEUE, BenchStack, Meters, PhaseUsage
from bench.stats import latency_summary_ms, ratio, sum_present
from events import contract as ec
from events.api import WebhookEndpoints
from stack.servers import LOOPBACK, free_port, wait_http
from starter.api import CardOrders

SECRET_ENV = "BENCH_WEBHOOK_SECRET"  # noqa: S105 - the name of a variable, not a secret
CONSUMER = "webhook_consumer"
DESCRIPTION = "make bench: the events row's consumer (bench/events.py)"
# Orders whose histories are read per side: enough for a mean, a fraction of the read's cost.
HISTORY_SAMPLE = 100
# After the last order of an *on* round closed, how long its events may take to arrive.
DRAIN_LIMIT_S = 120.0


# ----------------------------------------------------------------------- the consumer


def consumer_app(secret: str) -> Any:
    """A bank's receiver: verify (the stock library), de-duplicate by id, note when."""
    from standardwebhooks import Webhook, WebhookVerificationError
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    hook = Webhook(secret)
    seen: set[str] = set()
    records: list[dict[str, Any]] = []
    counts = {"duplicates": 0, "refused": 0}

    async def receive(request: Request) -> Response:
        body = await request.body()
        try:
            event = hook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            counts["refused"] += 1
            return Response(status_code=400)
        verified_at = time.time()
        if event["id"] in seen:
            counts["duplicates"] += 1
            return Response(status_code=204)
        seen.add(event["id"])
        records.append(
            {
                "id": event["id"],
                "type": event["type"],
                "workflow_id": event["workflow_id"],
                "card_id": event["card_id"],
                "sequence": event.get("sequence"),
                "emitted_at": event["emitted_at"],
                "verified_at": verified_at,
            }
        )
        return Response(status_code=204)

    async def stats(request: Request) -> Response:
        return JSONResponse({"unique": len(records), **counts})

    async def received(request: Request) -> Response:
        return JSONResponse({"records": records, **counts})

    async def health(request: Request) -> Response:
        return Response(status_code=204)

    return Starlette(
        routes=[
            Route("/", receive, methods=["POST"]),
            Route("/_stats", stats),
            Route("/_received", received),
            Route("/_health", health),
        ]
    )


def consumer_main(argv: list[str]) -> None:
    import uvicorn

    p = argparse.ArgumentParser(prog="python -m bench.events consumer")
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args(argv)
    uvicorn.run(consumer_app(os.environ[SECRET_ENV]), host=LOOPBACK, port=a.port, log_level="warning")


# ------------------------------------------------------------------- pure functions


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def lags_s(records: Sequence[dict[str, Any]]) -> list[float]:
    """Emitted (the workflow's time when it noticed the milestone) to verified by the consumer."""
    return [r["verified_at"] - _ts(r["emitted_at"]) for r in records]


def completeness(records: Sequence[dict[str, Any]], workflow_ids: Sequence[str], numbered: int) -> dict[str, Any]:
    """Did every event arrive? ``numbered``: events the hub numbered while the orders ran (each
    one is owed to the endpoint, which subscribed to all). Every order must have as many events
    as the most common count, and each card's events must have arrived in sequence order."""
    per_order = Counter(r["workflow_id"] for r in records)
    counts = [per_order.get(w, 0) for w in workflow_ids]
    expected = Counter(counts).most_common(1)[0][0] if counts else 0
    short = [w for w, n in zip(workflow_ids, counts, strict=True) if n != expected]
    last: dict[str, int] = {}
    out_of_order = 0
    for r in records:  # in arrival order
        seq = r.get("sequence") or 0
        if seq < last.get(r["card_id"], 0):
            out_of_order += 1
        last[r["card_id"]] = max(seq, last.get(r["card_id"], 0))
    ok = bool(workflow_ids) and expected > 0 and not short and len(records) == numbered and not out_of_order
    return {
        "ok": ok,
        "numbered_by_hub": numbered,
        "verified_unique": len(records),
        "missing": max(0, numbered - len(records)),
        "events_per_order": expected,
        "orders_with_other_count": len(short),
        "orders_with_other_count_sample": short[:5],
        "out_of_order": out_of_order,
    }


def steady_rate(runs: Sequence[load.OrdersRun]) -> float:
    """Orders per second over several rounds: each round's completions between its 10th and
    90th percentile (every lane busy), summed, over the summed spans."""
    done = spans = 0.0
    for run in runs:
        t = sorted(run.done_at)
        if len(t) < 10:
            done, spans = done + len(t), spans + run.wall_s
            continue
        lo, hi = len(t) // 10, len(t) - 1 - len(t) // 10
        done, spans = done + hi - lo, spans + t[hi] - t[lo]
    return done / spans if spans > 0 else 0.0


def event_targets(ev: dict[str, Any]) -> list[tuple[str, str, Any, bool | None]]:
    """(name, wanted, measured, met) of the events row (issues 22 and 24)."""
    tr = ev.get("throughput_ratio")
    p99 = ev["on"]["lag"]["p99_ms"]
    rate = ev["on"]["notifications_per_s"]
    return [
        ("events: orders/s with webhooks on / events off", ">= 0.85", tr, None if tr is None else tr >= 0.85),
        (
            f"events: delivery lag p99, emitted → verified, at {rate:g} notifications/s (ms)",
            "<= 2000",
            p99,
            None if p99 is None else p99 <= 2000,
        ),
        (
            "events: every event verified by the consumer, once after de-duplication, in order per card",
            "yes",
            ev["delivery"]["ok"],
            ev["delivery"]["ok"],
        ),
    ]


# ------------------------------------------------------------------------- the row


def _per_order_ms(usage: PhaseUsage, orders: int) -> dict[str, float]:
    return {name: round(u.cpu_s / orders * 1000, 2) for name, u in usage.processes.items()} if orders else {}


def _cpu_sum(cpu_ms: dict[str, float], procs: Sequence[str]) -> float | None:
    total = sum_present(*(cpu_ms.get(p) for p in procs))
    return None if total is None else round(total, 2)


def _sum_usage(usages: Sequence[PhaseUsage]) -> PhaseUsage:
    total = PhaseUsage(wall_s=sum(u.wall_s for u in usages))
    for u in usages:
        for name, p in u.processes.items():
            t = total.processes.get(name)
            total.processes[name] = (
                p
                if t is None
                else type(p)(t.cpu_s + p.cpu_s, t.rss_start_mib, p.rss_end_mib, max(t.peak_rss_mib, p.peak_rss_mib))
            )
    return total


async def _events_history(client: Client) -> int:
    """History events of the issuer's hub (every run of it) and of its sealed pages, so far."""
    total = 0
    query = f'WorkflowType IN ("{ec.HUB_WORKFLOW_TYPE}", "{ec.PAGE_WORKFLOW_TYPE}")'
    async for wf in client.list_workflows(query):
        if wf.status is not None and wf.status.name == "RUNNING":
            total += (await client.get_workflow_handle(wf.id, run_id=wf.run_id).describe()).history_length
        else:
            total += wf.history_length or 0
    return total


def _seconds(e: Any) -> float:
    return float(e.event_time.seconds + e.event_time.nanos / 1e9)


async def hub_timings(client: Client, since: float) -> dict[str, dict[str, float | int | None]]:
    """Where a delivery's time goes, read from the hub's histories (every run) after ``since``: a
    signal of events waits for the hub's next workflow task; the hub's tasks take their time,
    with the deliveries they run as local activities (one marker each, ``local_delivery``);
    a delivery that is an activity (after a failure, or a slow endpoint) posts its batch, then
    the hub's task that takes its result schedules the next one."""
    from temporalio.api.enums.v1 import EventType as T

    waits: dict[str, list[float]] = {
        "signal_to_hub_task": [],
        "hub_task": [],
        "delivery_activity": [],
        "delivery_turnaround": [],
        "local_delivery": [],
    }
    query = f'WorkflowType = "{ec.HUB_WORKFLOW_TYPE}"'
    async for wf in client.list_workflows(query):
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        signals: list[float] = []
        task_started = completed = None
        started: dict[int, float] = {}
        # Events came in while the delivery ran: the next one is owed at once (else it waits for events).
        owed = owed_at_end = False
        for e in history.events:
            t = _seconds(e)
            if t < since:
                continue
            if e.event_type == T.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                signals.append(t)
                owed = True
            elif e.event_type == T.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                waits["signal_to_hub_task"] += [t - s for s in signals]
                signals, task_started = [], t
            elif e.event_type == T.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and task_started is not None:
                waits["hub_task"].append(t - task_started)
            elif e.event_type == T.EVENT_TYPE_MARKER_RECORDED and task_started is not None:
                waits["local_delivery"].append(t - task_started)  # at most: the task's time
            elif e.event_type == T.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                if completed is not None and owed_at_end:
                    waits["delivery_turnaround"].append(t - completed)
                completed, owed = None, False
            elif e.event_type == T.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started[e.activity_task_started_event_attributes.scheduled_event_id] = t
            elif e.event_type == T.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                begun = started.get(e.activity_task_completed_event_attributes.scheduled_event_id)
                if begun is not None:
                    waits["delivery_activity"].append(t - begun)
                completed, owed_at_end = t, owed
    return {k: latency_summary_ms(v) for k, v in waits.items()}


async def events_phase(
    stack: BenchStack,
    edge_client: Client,
    plain: Client,
    codec: Any,
    templates: load.NotificationTemplates,
    tag: str,
    a: argparse.Namespace,
    log: Callable[[str], None],
    probe: ProbeListener | None,
) -> dict[str, Any]:
    n_round = -(-a.events_orders // a.events_rounds)
    timing = stack.local.order_timing()
    sides = {
        "on": CardOrders(
            edge_client,
            task_queue=PRODUCT_TASK_QUEUE,
            timing=timing.model_copy(update={"events": True}),
            edge=stack.local.order_edge(),
        ),
        "off": CardOrders(
            edge_client,
            task_queue=PRODUCT_TASK_QUEUE,
            timing=timing.model_copy(update={"events": False}),
            edge=stack.local.order_edge(),
        ),
    }
    # Earlier phases' events may still be reaching the hub (thousands after the scale run): they
    # would be owed to the endpoint and charged to the first *on* round.
    await _wait_quiet(Meters({"worker": stack.pids["worker"]}).meters["worker"], limit_s=300)
    endpoints = WebhookEndpoints(edge_client, PRODUCT_TASK_QUEUE, stack.local.events_settings())
    port = free_port()
    url = f"http://{LOOPBACK}:{port}/"
    created = await endpoints.create(ISSUER_ID, url, ["*"], description=DESCRIPTION)
    endpoint_id = created.endpoint.endpoint_id
    consumer = stack.supervisor.start(
        CONSUMER,
        [sys.executable, "-m", "bench.events", "consumer", "--port", str(port)],
        {**stack.local.base_env(), SECRET_ENV: created.secret},
    )
    await wait_http(f"{url}_health", "webhook consumer", alive=stack.supervisor.check_alive)
    meters = Meters({**stack.pids, "driver": os.getpid(), "consumer": consumer.pid})
    worker_meter = meters.meters["worker"]
    notifier = load.ReceiverSender(stack.receiver_url, stack.notifier_ssl, stack.token_source())
    runs: dict[str, list[load.OrdersRun]] = {"on": [], "off": []}
    usages: dict[str, list[PhaseUsage]] = {"on": [], "off": []}
    history_events = {"before": await _events_history(plain)}
    row_started = time.time()
    # Owed from its creation on (the hub may deliver a first batch before anything here reads it).
    start_cursor = created.endpoint.cursor
    drain_s: list[float] = []
    http = httpx.AsyncClient(base_url=url, timeout=30)

    async def numbered() -> int:
        view = await endpoints.get(ISSUER_ID, endpoint_id)
        return view.cursor + view.backlog - start_cursor

    try:
        await notifier.warm(8)
        await stack.emulator("POST", "/_emulator/faults", json={"dropNotifications": True, "stepDelayMs": 0})
        for round_no in range(a.events_rounds):
            order = ("on", "off") if round_no % 2 == 0 else ("off", "on")
            for side in order:
                log(
                    f"events row: round {round_no + 1}, webhooks {side}: {n_round} orders, "
                    f"{a.events_concurrency} in flight"
                )
                with meters.phase() as usage:
                    run = await load.run_product(
                        sides[side],
                        f"{tag}e{side[1]}{round_no}",
                        n_round,
                        a.events_concurrency,
                        notify=notifier,
                        templates=templates,
                        pace_s=a.pace_ms / 1000,
                        probe=probe,
                    )
                    if side == "on":  # its events are part of what it costs
                        t0 = time.perf_counter()
                        owed = await numbered()
                        while (await http.get("/_stats")).json()["unique"] < owed:
                            if time.perf_counter() - t0 > DRAIN_LIMIT_S:
                                break
                            await asyncio.sleep(0.2)
                        drain_s.append(round(time.perf_counter() - t0, 2))
                runs[side].append(run)
                usages[side].append(usage)
                log(
                    f"events row: webhooks {side}: {run.steady_per_s:.1f} orders/s, errors {len(run.errors)}"
                    + (f", events drained {drain_s[-1]} s after the last order" if side == "on" else "")
                )
                await _wait_quiet(worker_meter)
        history_events["after"] = await _events_history(plain)
        timings = await hub_timings(plain, row_started)
        got = (await http.get("/_received")).json()
        owed = await numbered()
    finally:
        await notifier.aclose()
        await http.aclose()
        await endpoints.disable(ISSUER_ID, endpoint_id)
        consumer.terminate()

    out: dict[str, Any] = {
        "orders_per_side": n_round * a.events_rounds,
        "rounds": a.events_rounds,
        "concurrency": a.events_concurrency,
        "pace_ms": a.pace_ms,
        "endpoint": url,
    }
    on_ids = [w for r in runs["on"] for w in r.workflow_ids]
    off_ids = [w for r in runs["off"] for w in r.workflow_ids]
    records: list[dict[str, Any]] = got["records"]
    delivery = completeness(records, on_ids, owed)
    # Orders of earlier phases still open emit too (owed to the endpoint, counted above), but
    # the lag and the rate are the *on* orders' own.
    wanted = set(on_ids)
    own = [r for r in records if r["workflow_id"] in wanted]
    delivery["other_orders_events"] = len(records) - len(own)
    delivery["duplicates_dropped"] = got["duplicates"]
    delivery["refused_signatures"] = got["refused"]
    delivery["order_errors"] = sum(len(r.errors) for side in runs.values() for r in side)
    delivery["ok"] = delivery["ok"] and delivery["order_errors"] == 0 and got["refused"] == 0
    out["delivery"] = delivery
    per_notification = len(load.HAPPY_PATH)
    for side, ids in (("on", on_ids), ("off", off_ids)):
        usage = _sum_usage(usages[side])
        sample = ids[:HISTORY_SAMPLE]
        hist = await summarise(plain, sample, codec)
        rate = steady_rate(runs[side])
        out[side] = {
            "completed": len(ids),
            "errors": [e for r in runs[side] for e in r.errors][:5],
            "wall_s": round(usage.wall_s, 2),
            "orders_per_s": round(rate, 2),
            "notifications_per_s": round(rate * per_notification, 1),
            "history_events_per_order": round(hist.events_per_order, 1),
            "history_bytes_per_order": round(hist.bytes_per_order),
            "history_sample": len(sample),
            "cpu_ms_per_order": _per_order_ms(usage, len(ids)),
        }
    on = out["on"]
    on["events_per_s"] = round(len(own) / on["wall_s"], 1) if on["wall_s"] else None
    on["lag"] = latency_summary_ms(lags_s(own))
    on["drain_s"] = drain_s
    on["hub_timings"] = timings
    hub_events = history_events["after"] - history_events["before"]
    on["hub_history_events_per_order"] = round(hub_events / len(on_ids), 2) if on_ids else None
    out["throughput_ratio"] = ratio(on["orders_per_s"], out["off"]["orders_per_s"])
    cost: dict[str, Any] = {}
    for key, procs in (
        ("temporal_cpu_ms", ("temporal",)),
        ("worker_cpu_ms", ("worker", "events_worker")),
        ("consumer_cpu_ms", ("consumer",)),
    ):
        v_on, v_off = (_cpu_sum(side["cpu_ms_per_order"], procs) for side in (on, out["off"]))
        cost[key] = {
            "on": v_on,
            "off": v_off,
            "extra": None if v_on is None or v_off is None else round(v_on - v_off, 2),
        }
    order_extra = on["history_events_per_order"] - out["off"]["history_events_per_order"]
    cost["history_events"] = {
        "on": on["history_events_per_order"],
        "off": out["off"]["history_events_per_order"],
        "extra": round(order_extra, 1),
        "hub_and_pages": on["hub_history_events_per_order"],
    }
    out["cost_per_order"] = cost
    if not delivery["ok"]:
        log(f"events row: ERROR: events missing or out of order: {delivery}")
    return out


async def _wait_quiet(meter: Any, quiet_cpu_s: float = 0.05, limit_s: float = 120) -> None:
    """Until the worker spends (almost) no CPU for a second: the next side starts on a calm worker."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = sum(meter._proc.cpu_times()[:2])
        await asyncio.sleep(1.0)
        if sum(meter._proc.cpu_times()[:2]) - before < quiet_cpu_s:
            return


# ------------------------------------------------------------------------- report


def markdown(r: dict[str, Any]) -> list[str]:
    ev = r.get("events")
    if not ev:
        return []
    on, off, cost = ev["on"], ev["off"], ev["cost_per_order"]
    out = [
        f"\n### Events: webhooks on vs events off ({ev['orders_per_side']} orders per side, "
        f"{ev['rounds']} alternated rounds, {ev['concurrency']} in flight)\n"
    ]
    rows: list[list[Any]] = [
        ["orders completed", on["completed"], off["completed"], ""],
        ["orders/s (steady state)", on["orders_per_s"], off["orders_per_s"], ev["throughput_ratio"]],
        ["notifications/s (D1 → receiver)", on["notifications_per_s"], off["notifications_per_s"], ""],
        ["events verified by the consumer per s", on["events_per_s"], "-", ""],
        [
            "delivery lag emitted → verified p50 / p99 / max (ms)",
            f"{on['lag']['p50_ms']} / {on['lag']['p99_ms']} / {on['lag']['max_ms']}",
            "-",
            "",
        ],
        ["history events / order (order's own)", on["history_events_per_order"], off["history_events_per_order"], ""],
        ["history events / order in the hub and its pages", on["hub_history_events_per_order"], 0, ""],
        ["history bytes / order (order's own)", on["history_bytes_per_order"], off["history_bytes_per_order"], ""],
    ]
    for proc, label in (
        ("temporal", "Temporal server"),
        ("worker", "worker"),
        ("events_worker", "events worker (hubs, deliveries)"),
        ("consumer", "webhook consumer"),
        ("receiver", "receiver"),
        ("driver", "driver"),
    ):
        v_on, v_off = on["cpu_ms_per_order"].get(proc), off["cpu_ms_per_order"].get(proc)
        rows.append([f"{label} CPU ms / order", v_on, v_off, ratio(v_on, v_off) if v_off else ""])
    from bench.report import _table  # the doc's table format (bench/report.py imports this module lazily)

    out.append(_table(["", "webhooks on", "events off", "on / off"], rows))
    d = ev["delivery"]
    out.append(
        f"\nDelivery: {d['verified_unique']:,} events verified of {d['numbered_by_hub']:,} the hub numbered "
        f"({d['events_per_order']} per order; {d['orders_with_other_count']} orders with another count; "
        f"{d['out_of_order']} out of order per card; {d['duplicates_dropped']} duplicates dropped; "
        f"{d['refused_signatures']} signatures refused; {d.get('other_orders_events', 0)} of orders of earlier "
        f"phases): **{'complete' if d['ok'] else 'INCOMPLETE'}**. "
        f"Per order the events cost {cost['history_events']['extra']} history events in the order and "
        f"{cost['history_events']['hub_and_pages']} in the hub, {cost['temporal_cpu_ms']['extra']} ms of server CPU "
        f"and {cost['worker_cpu_ms']['extra']} ms of worker CPU (the orders' and the events' workers). "
        f"Histories: the first {on['history_sample']} orders "
        "of each side. Lag: from the event's `emitted_at` (the workflow's time) to the consumer's verification."
    )
    ht = on.get("hub_timings")
    if ht:

        def pair(key: str) -> str:
            return f"{_ms(ht[key]['p50_ms'])} / {_ms(ht[key]['p99_ms'])} ms"

        out.append(
            "\nWhere the lag goes (p50 / p99, from the hub's history): a signal of events waits "
            f"{pair('signal_to_hub_task')} for the hub's next workflow task; a hub task takes {pair('hub_task')}, "
            f"with the {ht['local_delivery']['count']} deliveries it ran as local activities (one batch at a time "
            f"per delivery loop, up to `EVENTS_BATCH_SIZE`); {ht['delivery_activity']['count']} deliveries were "
            f"activities (after a failure or a slow attempt): {pair('delivery_activity')}, and from the end of "
            f"one to the next one's scheduling, events waiting: {pair('delivery_turnaround')}."
        )
    targets = [t for t in r.get("targets", []) if t["name"].startswith("events:")]
    if targets:
        out.append("")
        out.append(
            _table(
                ["target", "wanted", "measured", "met"],
                [
                    [
                        t["name"],
                        t["wanted"],
                        t["measured"],
                        "n/a" if t["met"] is None else "yes" if t["met"] else "**no**",
                    ]
                    for t in targets
                ],
            )
        )
    return out


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


if __name__ == "__main__":
    if sys.argv[1:2] == ["consumer"]:
        consumer_main(sys.argv[2:])
    else:
        sys.exit("usage: python -m bench.events consumer --port PORT (the events row runs in python -m bench)")
