"""An *observed* stack for the operator tests, separate from the session ``stack``:

* its own Temporal dev server **with the Web UI** (the UI test drives it with Chromium;
  the shared session server stays UI-less so other tests do not pay for it);
* a client carrying Temporal's ``TracingInterceptor`` (client only; the worker inherits
  it) on an in-memory span exporter, and a Runtime serving Prometheus metrics on a free
  port, exactly as ``observability.process.configure_process`` wires a real process;
* its own emulator, receiver and worker, so faults and captured notifications set by
  these tests never disturb the rest of the suite.

Package-scoped: built once for tests/operations/, torn down after them (tracing is
switched off again so later tests see no interceptor).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts import search_attributes as sa
from d1.paths import notification_path
from observability.metrics import build_runtime
from observability.tracing import client_interceptors, use_tracer_provider
from receiver.routing import NotificationRouter
from security.codec import load_codec
from stack.local import LocalStack
from stack.spec import Ports
from starter.api import CardOrders
from temporal_client import data_converter
from tests.conftest import ISSUER_ID, fast_timing, spec_for_tests, temporal_cli
from tests.support import inprocess
from tests.support.senders import as_senders, with_senders

TASK_QUEUE = "ops-card-orders"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class OpsStack:
    env: WorkflowEnvironment
    client: Client
    orders: CardOrders
    temporal_address: str
    ui_url: str
    metrics_url: str
    emulator_url: str
    receiver_url: str
    router: NotificationRouter
    spans: InMemorySpanExporter
    codec_keys: Path
    tmp: Path
    local: LocalStack

    async def emulator(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.emulator_url, timeout=10) as http:
            return await http.request(method, path, **kw)

    async def faults(self, **faults: Any) -> None:
        resp = await self.emulator("POST", "/_emulator/faults", json=faults)
        assert resp.status_code < 300, resp.text

    async def notify(self, *operations: dict[str, Any]) -> httpx.Response:
        """Post a notification body to the receiver, as D1 would."""
        async with httpx.AsyncClient(base_url=self.receiver_url, timeout=10) as http:
            return await http.post(notification_path(ISSUER_ID), json={"operations": list(operations)})

    async def metrics_text(self) -> str:
        async with httpx.AsyncClient(timeout=5) as http:
            resp = await http.get(self.metrics_url)
        resp.raise_for_status()
        return resp.text

    def finished_spans(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def cli_env(self) -> dict[str, str]:
        """What the stack sets for ``python -m starter`` against it (the CLI runs in-process here)."""
        return self.local.variables("starter")


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def ops(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OpsStack]:
    tmp = tmp_path_factory.mktemp("ops")
    # Its own dev server on the stack's ports (with the UI), and metrics on the "worker" port.
    local = spec_for_tests(tmp, task_queue=TASK_QUEUE, ports=Ports.free(metrics=True)).ensure()
    converter = data_converter(as_senders(load_codec(local.paths.codec_keys)))
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=converter,
        search_attributes=sa.ALL,
        ui=True,
        port=local.ports.temporal,
        ui_port=local.ports.temporal_ui,
        dev_server_log_level="error",
    )
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))  # raw spans: what our code puts in them
    use_tracer_provider(provider)
    telemetry = local.telemetry_settings("worker")
    runtime = build_runtime(telemetry, "ops-test")
    try:
        client = with_senders(await local.connect(interceptors=client_interceptors(), runtime=runtime))
        async with inprocess.running_product(local, client) as p:
            yield OpsStack(
                env=env,
                client=client,
                orders=CardOrders(client, task_queue=TASK_QUEUE, timing=local.order_timing(), edge=local.order_edge()),
                temporal_address=local.temporal_address,
                ui_url=f"http://127.0.0.1:{local.ports.temporal_ui}",
                metrics_url=f"http://127.0.0.1:{telemetry.metrics_port}/metrics",
                emulator_url=p.emulator_url,
                receiver_url=p.receiver_url,
                router=p.router,
                spans=spans,
                codec_keys=local.paths.codec_keys,
                tmp=tmp,
                local=local,
            )
    finally:
        use_tracer_provider(None)
        await env.shutdown()


@pytest_asyncio.fixture(loop_scope="session")
async def calm_emulator(ops: OpsStack) -> AsyncIterator[OpsStack]:
    """Faults and captured notifications set by a test never leak into the next one."""
    yield ops
    await ops.faults(captureNotifications=False, dropNotifications=False, orderFailures=[], stepDelayMs=20)


def slow_timing(**overrides: Any) -> Any:
    """Orders that do not reconcile on their own during a test (operators re-drive them)."""
    return fast_timing(reconcile_after=timedelta(hours=1), **overrides)


async def eventually(check: Callable[[], Any], *, timeout: float = 20.0, poll: float = 0.2) -> Any:
    """Visibility is eventually consistent: retry an async check until it returns truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(poll)


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """``test-output/<test name>/`` in the repository (ignored by git): screenshots and the like."""
    path = REPO / "test-output" / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    yield path
