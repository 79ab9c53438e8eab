"""Load generators: the baseline orders, the product orders, notifications, the scale run.

Orders run in a closed loop (a fixed number in flight) so that the product and the
baseline see the same offered concurrency and their throughputs compare. Notifications
are sent either at a fixed rate (latency at a given load, open loop) or as fast as a
fixed number of senders can (the ceiling).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client

from bench.baseline import SIGNAL_NAME, WORKFLOW_NAME
from bench.http1 import Http1Connection
from bench.probe import ProbeListener
from bench.procs import BASELINE_TASK_QUEUE, ISSUER_ID, BenchStack
from contracts.card_order import NOTIFICATION_SIGNAL, Notification
from contracts.card_order import workflow_id as workflow_id_for
from d1.notifications import OperationNotification
from d1.paths import notification_path
from stack.samples import sample_order
from starter.api import CardOrders

# What the emulator sends for a happy-path order (see emulator/simulator.py).
HAPPY_PATH = (
    ("CARD_PROD_REQUESTED", None),
    ("DATA_PREPARED", None),
    ("CARD_PROD_READY", None),
    ("CARD_PROD_ONGOING", None),
    ("CARD_PROD_DONE", None),
    ("CARD_SHIPPED", "InfoReceived"),
    ("CARD_SHIPPED", "InTransit"),
    ("CARD_SHIPPED", "OutForDelivery"),
    ("CARD_SHIPPED", "Delivered"),
)


async def closed_loop(n: int, concurrency: int, fn: Callable[[int], Awaitable[None]]) -> float:
    """Run ``fn(0..n-1)`` with ``concurrency`` in flight; return the wall time."""
    items = iter(range(n))

    async def lane() -> None:
        for i in items:  # one shared iterator: each index is taken exactly once
            await fn(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(max(1, min(concurrency, n)))))
    return time.perf_counter() - t0


@dataclass
class OrdersRun:
    """One batch of orders, product or baseline."""

    orders: int
    concurrency: int
    wall_s: float = 0.0
    workflow_ids: list[str] = field(default_factory=list)
    client_latency_s: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    # perf_counter() at each completion: the steady-state rate leaves out ramp-up and ramp-down.
    done_at: list[float] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return len(self.workflow_ids) / self.wall_s if self.wall_s else 0.0

    @property
    def steady_per_s(self) -> float:
        """Completions per second between the 10th and the 90th percentile completion: the rate
        once every lane is busy (a closed loop starts and ends with idle lanes)."""
        done = sorted(self.done_at)
        if len(done) < 10:
            return self.per_s
        lo, hi = len(done) // 10, len(done) - 1 - len(done) // 10
        span = done[hi] - done[lo]
        return (hi - lo) / span if span > 0 else self.per_s


def baseline_bodies(rid: str) -> list[dict[str, Any]]:
    """Signal arguments shaped like the emulator's operation objects (similar payload sizes)."""
    out = []
    for status, ship in HAPPY_PATH:
        details: dict[str, Any] = {"status": status, "dueDate": "2030-01-01", "productionSite": "EMU-SITE-01"}
        if ship:
            details["shipment"] = {
                "carrier": "dhl",
                "trackingNumber": "0123456789",
                "status": ship,
                "message": ship,
                "trackingUrl": "https://tracking.emulator.invalid/dhl/0123456789",
            }
        out.append(
            {
                "operationId": f"op-{rid}",
                "operation": "PRODUCE",
                "status": "SUCCESSFUL" if ship else "PENDING",
                "startTime": "2030-01-01T00:00:00.000Z",
                "cardId": f"card-{rid}",
                "issuerRequestId": rid,
                "details": details,
            }
        )
    return out


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:300]


async def run_baseline(
    client: Client, tag: str, n: int, concurrency: int, pace_s: float | None = None, probe: ProbeListener | None = None
) -> OrdersRun:
    """Bare workflows: start, then the 9 signals, then the result.

    ``pace_s`` None: the signals back to back (the server folds several into one workflow
    task: the engine's ceiling when signals batch). A number: the shape of a real order:
    each signal ``pace_s`` after the previous one was handled by the worker (``probe``;
    without one, after it was accepted), so that each is its own workflow task (checked
    afterwards from the histories)."""
    run = OrdersRun(orders=n, concurrency=concurrency)

    async def one(i: int) -> None:
        rid = f"{tag}-b{i:06d}"
        wid = f"bench-baseline:{rid}"
        bodies = baseline_bodies(rid)
        t0 = time.perf_counter()
        try:
            handle = await client.start_workflow(WORKFLOW_NAME, len(bodies), id=wid, task_queue=BASELINE_TASK_QUEUE)
            paced = pace_s is not None
            if paced and probe is not None:
                await probe.wait_handled(wid, 1)  # its first task ran (and scheduled the activity)
            for step, body in enumerate(bodies, start=2):
                if pace_s is not None:
                    await asyncio.sleep(pace_s)
                await handle.signal(SIGNAL_NAME, body)
                if paced and probe is not None:
                    await probe.wait_handled(wid, step)
            await handle.result()
        except Exception as err:
            run.errors.append(_error(err))
            return
        run.client_latency_s.append(time.perf_counter() - t0)
        run.done_at.append(time.perf_counter())
        run.workflow_ids.append(wid)
        run.outcomes["COMPLETED"] += 1

    run.wall_s = await closed_loop(n, concurrency, one)
    return run


class NotificationTemplates:
    """The emulator's own notification bodies for one happy-path order, re-addressed to others.

    The driver plays D1's notifier in the product phase (as it does toward the receiver in
    the notification and scale phases): the bodies are the ones the emulator produced for a
    real order, with that order's issuerRequestId (hence cardId) and operationId replaced,
    so each product order receives exactly what D1 would send it, paced like the baseline's
    signals, and D1's own sending cost stays out of the product's processes."""

    def __init__(self, bodies: list[dict[str, Any]]) -> None:
        first = bodies[0]["operations"][0]
        self._rid = str(first.get("issuerRequestId") or first["details"]["issuerRequestId"])
        self._op = str(first["operationId"])
        self._raw = [json.dumps(b, separators=(",", ":")) for b in bodies]
        if len(self._raw) != len(HAPPY_PATH):
            raise RuntimeError(f"expected {len(HAPPY_PATH)} notifications for a happy-path order, got {len(bodies)}")

    def for_order(self, rid: str) -> list[dict[str, Any]]:
        op = f"{rid}-op"
        return [
            {"_raw": raw.replace(self._op, op).replace(self._rid, rid).encode(), "_parsed": [], "_ops": 1}
            for raw in self._raw
        ]


@dataclass
class EdgeCost:
    """CPU the driver spent in the starter's edge (validation, JWE, card-data guard)."""

    cpu_s: float = 0.0
    orders: int = 0


async def run_product(
    orders: CardOrders,
    tag: str,
    n: int,
    concurrency: int,
    *,
    notify: Sender | None = None,
    templates: NotificationTemplates | None = None,
    pace_s: float = 0.0,
    edge_cost: EdgeCost | None = None,
    probe: ProbeListener | None = None,
) -> OrdersRun:
    """Full orders through the starter. With ``notify`` (and ``templates``) the driver plays
    D1's notifier: ``pace_s`` after the submit, then each notification ``pace_s`` after the
    worker handled the previous one (``probe``; without, after it was acknowledged): the
    baseline's shape. Without ``notify`` the emulator notifies at its step delay."""
    run = OrdersRun(orders=n, concurrency=concurrency)

    async def one(i: int) -> None:
        rid = f"{tag}-p{i:06d}"
        t0 = time.perf_counter()
        try:
            c0 = time.thread_time()
            prepared = orders.edge.prepare(sample_order(rid), timing=orders.timing)
            if edge_cost is not None:
                edge_cost.cpu_s += time.thread_time() - c0
                edge_cost.orders += 1
            submitted = await orders.submit_prepared(prepared)
            if notify is not None and templates is not None:
                if probe is not None:
                    await probe.wait_handled(submitted.workflow_id, 1)  # its first task ran (submit scheduled)
                for step, body in enumerate(templates.for_order(rid), start=2):
                    await asyncio.sleep(pace_s)
                    failure = await notify(body)
                    if failure:
                        raise RuntimeError(f"notification refused: {failure}")
                    if probe is not None:
                        await probe.wait_handled(submitted.workflow_id, step)
            view = await orders.wait(ISSUER_ID, rid)
        except Exception as err:
            run.errors.append(_error(err))
            return
        run.client_latency_s.append(time.perf_counter() - t0)
        run.done_at.append(time.perf_counter())
        run.workflow_ids.append(submitted.workflow_id)
        run.outcomes[view.state.outcome.value if view.state.outcome else "OPEN"] += 1

    run.wall_s = await closed_loop(n, concurrency, one)
    return run


# ------------------------------------------------------------------ held notifications


async def submit_held(
    stack: BenchStack,
    orders: CardOrders,
    tag: str,
    n: int,
    concurrency: int,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Submit ``n`` orders while the emulator captures their notifications instead of
    sending them, and wait until the emulator has accepted all of them.

    The orders stay open, waiting for notifications: what a wave of orders looks like
    while D1 is producing the cards. Returns the issuerRequestIds.
    """
    await stack.emulator("POST", "/_emulator/reset", json={})
    await stack.emulator("POST", "/_emulator/faults", json={"captureNotifications": True, "stepDelayMs": 0})
    rids = [f"{tag}-h{i:06d}" for i in range(n)]
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        await orders.submit(sample_order(rids[i]))
        done += 1
        if progress is not None and done % 1000 == 0:
            progress(done)

    await closed_loop(n, concurrency, one)
    while True:  # the submit activities finish after the starts do
        stats = await stack.emulator_stats()
        submissions = stats["submissions"]
        assert isinstance(submissions, dict)
        if len(submissions) >= n and stats["simulationsRunning"] == 0:
            return rids
        await asyncio.sleep(0.5)


async def captured_by_order(stack: BenchStack) -> dict[str, list[dict[str, Any]]]:
    """The captured notification bodies, per issuerRequestId, in the order D1 would send them."""
    bodies: list[dict[str, Any]] = (await stack.emulator("GET", "/_emulator/captured")).json()
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for body in bodies:
        op = body["operations"][0]
        rid = op.get("issuerRequestId") or (op.get("details") or {}).get("issuerRequestId")
        out[str(rid)].append(body)
    return dict(out)


def interleaved(groups: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Step 1 of every order, then step 2 of every order, ...: each order's updates stay in
    sequence and far apart, as when many cards are in production at once."""
    out: list[dict[str, Any]] = []
    for step in range(max((len(g) for g in groups), default=0)):
        out += [g[step] for g in groups if step < len(g)]
    return out


@dataclass
class SendResult:
    sent: int
    wall_s: float
    latency_s: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def per_s(self) -> float:
        return self.sent / self.wall_s if self.wall_s else 0.0


Sender = Callable[[dict[str, Any]], Awaitable[str | None]]


def direct_sender(client: Client) -> Sender:
    """Signal the order's workflow straight from a Temporal client: the receiver's floor."""

    async def send(body: dict[str, Any]) -> str | None:
        for op in body["_parsed"]:
            await client.get_workflow_handle(workflow_id_for(ISSUER_ID, op.request_id)).signal(
                NOTIFICATION_SIGNAL, Notification(operation=op)
            )
        return None

    return send


TokenSource = Callable[[], Awaitable[str]]


class ReceiverSender:
    """POST bodies to the receiver as D1 would; anything but 204 counts as a failure.

    Keeps a free list of keep-alive connections (one per concurrent request), so the
    sender costs the machine little and holds no pool-wide lock. With outbound OAuth it
    behaves like D1 (and the emulator's notifier): a 401 means the bearer token expired,
    so it fetches a new one, once for all concurrent senders, and tries again."""

    def __init__(
        self, receiver_url: str, ssl_context: ssl.SSLContext | None = None, token_source: TokenSource | None = None
    ) -> None:
        self._url = receiver_url + notification_path(ISSUER_ID)
        self._ssl = ssl_context
        self._token_source = token_source
        self._auth = b""
        self._auth_generation = 0
        self._token_lock = asyncio.Lock()
        self._idle: list[Http1Connection] = []

    async def _refresh_token(self, seen_generation: int) -> None:
        async with self._token_lock:
            if self._auth_generation == seen_generation and self._token_source is not None:
                self._auth = f"Authorization: Bearer {await self._token_source()}\r\n".encode()
                self._auth_generation += 1

    async def __call__(self, body: dict[str, Any]) -> str | None:
        if self._token_source is not None and not self._auth:
            await self._refresh_token(0)
        conn = self._idle.pop() if self._idle else Http1Connection(self._url, self._ssl)
        try:
            generation = self._auth_generation
            status = await conn.post(body["_raw"], self._auth)
            if status == 401 and self._token_source is not None:
                await self._refresh_token(generation)
                status = await conn.post(body["_raw"], self._auth)
        except BaseException:
            await conn.close()
            raise
        self._idle.append(conn)
        return None if status == 204 else f"HTTP {status}"

    async def warm(self, connections: int) -> None:
        """Open (and, over TLS, handshake) connections before timing, as a long-running D1
        sender would have them open already."""
        missing = max(0, connections - len(self._idle))
        fresh = [Http1Connection(self._url, self._ssl) for _ in range(missing)]
        await asyncio.gather(*(c.connect() for c in fresh))
        self._idle += fresh
        if self._token_source is not None and not self._auth:
            await self._refresh_token(0)

    async def aclose(self) -> None:
        while self._idle:
            await self._idle.pop().close()


def prepare(bodies: list[dict[str, Any]], ops_per_body: int = 1, *, parse: bool = True) -> list[dict[str, Any]]:
    """Pre-encode (for HTTP) and pre-parse (for direct signals) so that neither path pays it
    while being timed; ``ops_per_body`` > 1 builds D1 bulk bodies."""
    out = []
    for i in range(0, len(bodies), ops_per_body):
        ops = [op for b in bodies[i : i + ops_per_body] for op in b["operations"]]
        out.append(
            {
                "_raw": json.dumps({"operations": ops}, separators=(",", ":")).encode(),
                "_parsed": [OperationNotification.model_validate(op) for op in ops] if parse else [],
                "_ops": len(ops),
            }
        )
    return out


async def _timed(send: Sender, body: dict[str, Any], result: SendResult) -> None:
    t0 = time.perf_counter()
    try:
        failure = await send(body)
    except Exception as err:
        failure = type(err).__name__
    if failure:
        result.failures[failure] += 1
        return
    result.latency_s.append(time.perf_counter() - t0)
    result.sent += body["_ops"]


async def send_at_rate(bodies: list[dict[str, Any]], rate: float, send: Sender) -> SendResult:
    """Open loop: body i leaves at t0 + i/rate whether or not earlier ones were answered."""
    result = SendResult(sent=0, wall_s=0.0)
    loop = asyncio.get_running_loop()
    tasks = []
    t0 = loop.time()
    for i, body in enumerate(bodies):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_timed(send, body, result)))
    await asyncio.gather(*tasks)
    result.wall_s = loop.time() - t0
    return result


async def send_flat_out(bodies: list[dict[str, Any]], concurrency: int, send: Sender) -> SendResult:
    result = SendResult(sent=0, wall_s=0.0)
    result.wall_s = await closed_loop(len(bodies), concurrency, lambda i: _timed(send, bodies[i], result))
    return result


async def send_per_order_fifo(
    groups: list[list[dict[str, Any]]], concurrency: int, send: Sender, result: SendResult
) -> SendResult:
    """How the emulator (and D1) release notifications: one FIFO stream per order, many
    orders at once; a failed delivery is retried after a short pause, as D1 retries.
    ``result`` fills in as it goes, so a caller can watch progress or give up early."""

    async def order(i: int) -> None:
        for body in groups[i]:
            for _attempt in range(20):
                before = result.sent
                await _timed(send, body, result)
                if result.sent > before:
                    break
                await asyncio.sleep(0.5)

    result.wall_s = await closed_loop(len(groups), concurrency, order)
    return result


async def wait_closed(client: Client, workflow_ids: list[str], concurrency: int = 64) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(wid: str) -> None:
        async with sem:
            await client.get_workflow_handle(wid).result()

    await asyncio.gather(*(one(w) for w in workflow_ids))


async def count_open(client: Client) -> int:
    resp = await client.count_workflows('WorkflowType = "CardOrderWorkflow" AND ExecutionStatus = "Running"')
    return resp.count
