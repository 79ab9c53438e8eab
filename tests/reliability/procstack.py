"""A stack whose parts can be killed: the Temporal dev server on a SQLite file and the
worker as real OS processes; the emulator and the receiver as in-process servers that
can be stopped and started again on the same port. Described, like every test stack, by
``stack.spec.StackSpec`` (plain HTTP: these tests break processes, not TLS)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from receiver.routing import NotificationRouter
from settings import D1ClientSettings
from stack.local import LocalStack
from stack.processes import Supervisor
from starter.api import CardOrders
from tests.conftest import FAST_TIMING, TEST_EMULATOR, spec_for_tests, temporal_cli
from tests.support.inprocess import serve_emulator, serve_receiver
from tests.support.senders import with_senders

ROOT = Path(__file__).resolve().parents[2]
TASK_QUEUE = "reliability"


@dataclass
class ProcStack:
    tmp: Path
    temporal_port: int
    emulator_url: str
    receiver_port: int
    # What the stack sets for its worker and receiver processes, for a test that
    # starts one itself; prefer ``local.env(kind)``: the whole environment, a developer's
    # TEMPORAL_* configuration left out.
    env: dict[str, str]
    extra_server_args: list[str]
    codec_keys: Path
    local: LocalStack
    client: Client | None = None
    orders: CardOrders | None = None
    temporal: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _receiver: Any = None
    _receiver_stack: AsyncExitStack | None = None
    router: NotificationRouter | None = None
    _supervisor: Supervisor | None = None

    @property
    def supervisor(self) -> Supervisor:
        """Logs in ``tmp`` (temporal.log, worker-<n>.log); children die with the test run."""
        if self._supervisor is None:
            self._supervisor = Supervisor(self.tmp, cwd=ROOT)
        return self._supervisor

    # ----------------------------------------------------------- Temporal
    def start_temporal(self) -> None:
        argv = self.local.dev_server_argv(temporal_cli(), persist=True, extra=self.extra_server_args)
        self.temporal = self.supervisor.start("temporal", argv, self.local.env("temporal"))

    def stop_temporal(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM stops the server gracefully; SIGKILL crashes it."""
        assert self.temporal is not None
        self.temporal.send_signal(sig)
        try:
            self.temporal.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.temporal.kill()
            self.temporal.wait()

    async def connect(self) -> Client:
        last: Exception | None = None
        for _ in range(200):
            try:
                # Each message sealed as its production sender (tests/support/senders.py).
                return with_senders(await self.local.connect(interceptors=[]))
            except Exception as err:  # server still starting
                last = err
                await asyncio.sleep(0.1)
        raise RuntimeError(f"Temporal did not come up: {last}")

    # ------------------------------------------------------------- worker
    def start_worker(self) -> subprocess.Popen[bytes]:
        proc = self.supervisor.start(f"worker-{len(self.workers)}", self.local.argv("worker"), self.local.env("worker"))
        self.workers.append(proc)
        return proc

    def kill_workers(self, sig: int = signal.SIGKILL) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(sig)
                proc.wait(timeout=30)

    # ----------------------------------------------------------- receiver
    async def start_receiver(self) -> None:
        assert self.client is not None
        if self.router is None:
            self.router = NotificationRouter(self.client, TASK_QUEUE)
        self._receiver_stack = AsyncExitStack()
        await self._receiver_stack.enter_async_context(serve_receiver(self.local, self.router))

    async def stop_receiver(self) -> None:
        assert self._receiver_stack is not None
        await self._receiver_stack.aclose()
        self._receiver_stack = None

    # ----------------------------------------------------------- emulator
    async def emulator(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.emulator_url, timeout=10) as http:
            return await http.request(method, path, **kw)

    async def emulator_stats(self) -> dict[str, Any]:
        return (await self.emulator("GET", "/_emulator/stats")).json()


@asynccontextmanager
async def proc_stack(
    tmp: Path,
    *,
    extra_server_args: list[str] | None = None,
    step_delay_ms: int = 20,
    d1_read_timeout_s: float = 2,
    in_process_receiver: bool = True,
    **timing: Any,
) -> AsyncIterator[ProcStack]:
    """``in_process_receiver=False``: nothing listens on the receiver port; the test puts its
    own there (receiver processes behind a balancer: test_replicas.py)."""
    spec = spec_for_tests(
        tmp,
        task_queue=TASK_QUEUE,
        timing={**FAST_TIMING, **timing},
        emulator=replace(TEST_EMULATOR, step_delay_ms=step_delay_ms, notify_retry_cap_ms=1000),
    )
    # A D1 that stops answering is noticed within the tests' patience. A test that holds a D1
    # call open until it kills the worker raises the read timeout, so that the worker cannot
    # give up on the call (and retry it) before the kill.
    local = spec.override(D1ClientSettings, read_timeout_s=d1_read_timeout_s, connect_timeout_s=2).ensure()
    env = {**local.variables("worker"), **local.variables("receiver")}
    st = ProcStack(
        tmp, local.ports.temporal, "", local.ports.receiver, env, extra_server_args or [], local.paths.codec_keys, local
    )
    st.start_temporal()
    try:
        st.client = await st.connect()
        async with serve_emulator(local) as emulator_url:
            st.emulator_url = emulator_url
            if in_process_receiver:
                await st.start_receiver()
            st.orders = CardOrders(
                st.client, task_queue=TASK_QUEUE, timing=local.order_timing(), edge=local.order_edge()
            )
            try:
                yield st
            finally:
                st.kill_workers(signal.SIGTERM)
                if st._receiver_stack is not None:
                    await st.stop_receiver()
    finally:
        st.stop_temporal()
        st.supervisor.stop_all()


def work_dir(name: str) -> Path:
    """Logs and state of one reliability test, kept under test-output/ for post-mortems."""
    import shutil

    path = ROOT / "test-output" / "reliability" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
