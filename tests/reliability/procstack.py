"""A stack whose parts can be killed: the Temporal dev server on a SQLite file and the
worker as real OS processes; the emulator and the receiver as in-process servers that
can be stopped and started again on the same port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from contracts import search_attributes as sa
from emulator.app import create_app as create_emulator_app
from emulator.config import EmulatorSettings
from receiver.app import create_app as create_receiver_app
from receiver.routing import NotificationRouter
from security.codec import generate_keys_file, load_codec
from settings import D1ClientSettings
from stack.onboarding import ensure_issuer_keys
from starter.api import CardOrders
from starter.edge import KeyFile, OrderEdge
from temporal_client import data_converter
from tests.conftest import ISSUER_ID, fast_timing, temporal_cli
from tests.support.servers import free_port, serve

ROOT = Path(__file__).resolve().parents[2]
TASK_QUEUE = "reliability"


@dataclass
class ProcStack:
    tmp: Path
    temporal_port: int
    emulator_url: str
    receiver_port: int
    env: dict[str, str]
    extra_server_args: list[str]
    codec_keys: Path
    client: Client | None = None
    orders: CardOrders | None = None
    temporal: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _receiver: Any = None
    _receiver_stack: AsyncExitStack | None = None
    router: NotificationRouter | None = None

    # ----------------------------------------------------------- Temporal
    def start_temporal(self) -> None:
        log = open(self.tmp / "temporal.log", "ab")
        self.temporal = subprocess.Popen(
            [temporal_cli(), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
             "--port", str(self.temporal_port), "--db-filename", str(self.tmp / "temporal.db"),
             "--log-level", "error", *sa.dev_server_args(), *self.extra_server_args],
            stdout=log, stderr=subprocess.STDOUT,
        )

    def stop_temporal(self) -> None:
        assert self.temporal is not None
        self.temporal.send_signal(signal.SIGTERM)
        try:
            self.temporal.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.temporal.kill()
            self.temporal.wait()

    async def connect(self) -> Client:
        last: Exception | None = None
        for _ in range(200):
            try:
                return await Client.connect(
                    f"127.0.0.1:{self.temporal_port}", data_converter=data_converter(load_codec(self.codec_keys))
                )
            except Exception as err:  # server still starting
                last = err
                await asyncio.sleep(0.1)
        raise RuntimeError(f"Temporal did not come up: {last}")

    # ------------------------------------------------------------- worker
    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"worker-{len(self.workers)}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
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
        await self._receiver_stack.enter_async_context(
            serve(create_receiver_app(self.router), port=self.receiver_port)
        )

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
    tmp: Path, *, extra_server_args: list[str] | None = None, step_delay_ms: int = 20, **timing: Any
) -> AsyncIterator[ProcStack]:
    signing_key, jwks = ensure_issuer_keys(tmp / "issuer", ISSUER_ID)
    codec_keys = generate_keys_file(tmp / "codec-keys.json")
    temporal_port, receiver_port, emulator_port = free_port(), free_port(), free_port()
    emu_settings = EmulatorSettings(
        admin_api_enabled=True,  # the tests drive the sandbox (faults, scenarios, counters)
        port=emulator_port, state_dir=tmp / "emulator", issuer_keys_file=jwks,
        receiver_url=f"http://127.0.0.1:{receiver_port}", step_delay_ms=step_delay_ms,
        notify_retry_base_ms=50, notify_retry_cap_ms=1000,
    )
    env = {
        "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "TEMPORAL_TASK_QUEUE": TASK_QUEUE,
        "D1_ISSUER_ID": ISSUER_ID,
        "D1_BANKING_URL": f"http://127.0.0.1:{emulator_port}/banking/v1",
        "D1_AUTHZ_URL": f"http://127.0.0.1:{emulator_port}/authz/v1",
        "D1_SIGNING_KEY_FILE": str(signing_key),
        "D1_ENCRYPTION_PUBLIC_KEY_FILE": str(tmp / "emulator" / "d1-encryption-public.jwk"),
        "D1_READ_TIMEOUT_S": "2",
        "D1_CONNECT_TIMEOUT_S": "2",
        "CODEC_KEYS_FILE": str(codec_keys),
        # These tests break processes, not TLS: plain HTTP on loopback (the mTLS stack has its own tests).
        "D1_ALLOW_PLAINTEXT": "true",
        "RECEIVER_ALLOW_PLAINTEXT": "true",
    }
    st = ProcStack(tmp, temporal_port, "", receiver_port, env, extra_server_args or [], codec_keys)
    st.start_temporal()
    try:
        st.client = await st.connect()
        async with serve(create_emulator_app(emu_settings), port=emulator_port) as emulator_url:
            st.emulator_url = emulator_url
            await st.start_receiver()
            edge = OrderEdge(
                program_file=D1ClientSettings().program_file,
                encryption_key=KeyFile(tmp / "emulator" / "d1-encryption-public.jwk"),
            )
            st.orders = CardOrders(st.client, task_queue=TASK_QUEUE, timing=fast_timing(**timing), edge=edge)
            try:
                yield st
            finally:
                st.kill_workers(signal.SIGTERM)
                if st._receiver_stack is not None:
                    await st.stop_receiver()
    finally:
        st.stop_temporal()


def work_dir(name: str) -> Path:
    """Logs and state of one reliability test, kept under test-output/ for post-mortems."""
    import shutil

    path = ROOT / "test-output" / "reliability" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
