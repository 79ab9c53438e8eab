"""The worker process: runs the workflows and the D1 activities (docs/architecture.md).

It owns what the activities share: one HTTP connection pool to D1 and one access-token
provider (100 concurrent submissions cause one token request). It never needs D1's
encryption key: card data arrives already encrypted by the starter. SIGTERM/SIGINT give
in-flight activities ``graceful_shutdown_timeout`` to finish before the worker hands them back.

The issuers' event hubs and their webhook deliveries run on a task queue of their own
(``EVENTS_TASK_QUEUE``), polled by a second worker in this process: its own pollers and slots,
so a hub's tasks do not wait behind the orders' (docs/events.md, "Delivery").
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RPCError
from temporalio.worker import Worker, WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.card_order import D1Activities
from activities.d1_client import D1Client
from activities.token_provider import AccessTokenProvider
from contracts.card_order import OPEN_STAGES, open_stage_query, past_due_query
from d1.program import load_program
from events.activities import EventActivities, event_activities, events_off, order_masked_pan
from events.hub import EventHubWorkflow, EventPageWorkflow
from observability import names
from observability.audit import configure_audit_log
from observability.process import configure_process, exit_without_finalizing
from security.keys import load_jwk
from security.redaction import install_log_redaction
from security.sealing import WORKER
from security.transport import d1_http_verify
from settings import D1ClientSettings, EventsSettings, TemporalSettings
from temporal_client import connect
from workflows.activation import CardActivationWorkflow
from workflows.card_order import CardOrderWorkflow
from workflows.card_tracking import CardTrackingWorkflow
from workflows.d1_batch import D1BatchSubmissionWorkflow
from workflows.orphans import OrphanNotificationsWorkflow

log = logging.getLogger("worker")


@asynccontextmanager
async def d1_activities(settings: D1ClientSettings) -> AsyncIterator[list[Callable[..., Any]]]:
    signing_key = load_jwk(settings.signing_key_file, private=True)
    kid = settings.signing_kid or signing_key.get("kid")
    if not kid:
        raise RuntimeError("the assertion signing key has no kid; set D1_SIGNING_KID")
    timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    # mTLS to D1: our client certificate, D1's server verified against D1_TLS_CA_FILE.
    verify = d1_http_verify(settings)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, verify=verify) as http:
        tokens = AccessTokenProvider(
            http,
            authz_url=settings.authz_url,
            issuer_id=settings.issuer_id,
            signing_key=signing_key,
            kid=kid,
            assertion_lifetime_s=settings.assertion_lifetime_s,
            audience=settings.token_audience,
            refresh_margin_s=settings.token_refresh_margin_s,
        )
        program = load_program(settings.program_file)
        interface = program.interface
        # Each order follows the choice the starter copied into it; this says what new orders get.
        log.info("%s", program.four_eyes_summary())
        d1 = D1Client(http, tokens, banking_url=settings.banking_url, interface=interface)
        # Tracks outside the JWE only where the program places them so (d1/assumptions.py).
        clear = frozenset({"trackData"}) if interface.trackDataPlacement == "clear" else frozenset()
        acts = D1Activities(d1, clear_members=clear)
        yield [
            acts.submit_order,
            acts.fetch_production_status,
            acts.request_pull_and_change,
            acts.submit_order_batch,
            acts.request_tracking,
        ]


WORKFLOWS = [
    CardOrderWorkflow,
    OrphanNotificationsWorkflow,
    D1BatchSubmissionWorkflow,
    CardTrackingWorkflow,
    CardActivationWorkflow,
    EventHubWorkflow,
    EventPageWorkflow,
]
# Deterministic, side-effect-free modules the workflows use, shared with the sandbox instead of
# re-imported for every workflow run: the D1 models, the contracts, the pure rules, pydantic.
PASSTHROUGH_MODULES = (
    "d1",
    "contracts",
    "activities.contract",
    "observability.names",
    "security.payload_refusal",
    "workflows.order_state",
    "workflows.change_rules",
    "workflows.approvals",
    "workflows.details_line",
    "workflows.outcomes",
    "workflows.service_levels",
    "workflows.follow_up",
    "workflows.inputs",
    "workflows.tracking_rules",
    "workflows.events_out",
    "events.catalogue",
    "events.contract",
    "events.delivery_loop",
    "events.from_order",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
)


async def watch_orders(client: Client, every: timedelta = timedelta(seconds=60)) -> None:
    """Gauges from visibility counts, since no workflow wakes up for its due date: open orders
    by stage and those past due (each worker reports the same counts; dashboards and alerts
    take the max)."""
    meter = (client.service_client.config.runtime or Runtime.default()).metric_meter
    past_due = meter.create_gauge(names.ORDERS_PAST_DUE, "Running orders not shipped by their due date")
    open_orders = meter.create_gauge(names.ORDERS_OPEN, "Running orders by stage")
    while True:
        try:
            past_due.set((await client.count_workflows(past_due_query())).count, {})
            for stage in OPEN_STAGES:
                open_orders.set((await client.count_workflows(open_stage_query(stage))).count, {"stage": stage})
        except RPCError as err:
            log.warning("counting open orders failed: %s", err)
        await asyncio.sleep(every.total_seconds())


class SandboxRunner(SandboxedWorkflowRunner):
    """The SDK's sandbox, with the serialization context of a payload read without a trip
    into the sandbox.

    Before the codec seals or opens a payload, the SDK asks the workflow which context it
    belongs to (the order's id, or the activity's or child's: security/codec.py binds each
    payload to it). The stock runner answers each such question by compiling and running a
    code string inside the sandbox, once per payload of every activation and completion: in
    the bench's profiles, 7 % of the worker's Python time with events off and 15 % with
    events on (docs/benchmarks.md, "The sandbox's price"). The answer is plain data read from
    the workflow's pending commands (``InSandbox.get_serialization_context``), so it is read
    directly. The hook is private to temporalio 1.x: where it is missing (another SDK
    version) the stock path stays, and tests/unit/test_sandbox_runner.py says so.
    """

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        instance = super().create_instance(det)
        in_sandbox = getattr(instance, "globals_and_locals", {}).get("__temporal_in_sandbox")
        if in_sandbox is not None and hasattr(in_sandbox, "get_serialization_context"):
            instance.get_serialization_context = in_sandbox.get_serialization_context  # type: ignore[method-assign]
        return instance


# The modules that define the workflows. The stock sandbox imports each afresh for every new
# run (every card order: its module's code, the @workflow.defn checks), a fifth of the worker's
# Python time in the bench's profiles (docs/benchmarks.md, "The sandbox's price"). They keep
# no state at module level, so the worker shares them too. The tests run them strictly
# sandboxed (``strict=True``: tests/workflows, tests/events/test_hub.py, tests/histories),
# where the sandbox's restrictions catch a non-deterministic call in a workflow's own code.
WORKFLOW_MODULES = tuple(sorted({w.__module__ for w in WORKFLOWS}))


def workflow_runner(*, strict: bool = False) -> SandboxedWorkflowRunner:
    modules = PASSTHROUGH_MODULES if strict else (*PASSTHROUGH_MODULES, *WORKFLOW_MODULES)
    return SandboxRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*modules))


def build_worker(
    client: Client, task_queue: str, activities: Sequence[Callable[..., Any]], events: EventActivities | None = None
) -> Worker:
    """``events``: emit and deliver events (docs/events.md); None: a worker without events.
    It runs the hubs too: those of ``EVENTS_TASK_QUEUE=""`` and those started here before the
    hubs had a queue of their own (a hub stays on the queue it started on)."""
    events_acts = [events.emit, events.deliver] if events is not None else [events_off]
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        workflow_runner=workflow_runner(),
        activities=[*activities, *events_acts, order_masked_pan],
        graceful_shutdown_timeout=timedelta(seconds=20),
        max_concurrent_activities=200,
    )


def build_events_worker(client: Client, task_queue: str, events: EventActivities) -> Worker:
    """The hubs and their deliveries on ``EVENTS_TASK_QUEUE`` (events/hub.py)."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[EventHubWorkflow, EventPageWorkflow],
        workflow_runner=workflow_runner(),
        activities=[events.deliver],
        graceful_shutdown_timeout=timedelta(seconds=20),
        max_concurrent_activities=100,
    )


def build_workers(
    client: Client, task_queue: str, activities: Sequence[Callable[..., Any]], events: EventActivities
) -> list[Worker]:
    """The orders' worker, and the events' worker when the hubs have a queue of their own, as
    ``EVENTS_WORKER`` says."""
    settings = events.settings
    events_queue = settings.queue(task_queue)
    if events_queue == task_queue:
        return [build_worker(client, task_queue, activities, events)]
    workers = [] if settings.worker == "only" else [build_worker(client, task_queue, activities, events)]
    if settings.worker != "off":
        workers.append(build_events_worker(client, events_queue, events))
    return workers


@asynccontextmanager
async def worker_activities(events_only: bool) -> AsyncIterator[list[Callable[..., Any]]]:
    """The D1 activities, unless this process runs the events only (it needs no D1 key then)."""
    if events_only:
        yield []
        return
    async with d1_activities(D1ClientSettings()) as acts:
        yield acts


async def main() -> None:
    # Logs (TELEMETRY_LOG_*), metrics (TELEMETRY_METRICS_PORT), traces (OTEL_*): before connecting.
    telemetry = configure_process("worker")
    # httpx logs every D1 request at INFO; our own D1 call metrics and spans carry that.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    install_log_redaction()
    configure_audit_log()  # operator actions, written by the workflows (workflows/audit.py)
    temporal = TemporalSettings()
    client = await connect(temporal, sealer=WORKER)
    events_settings = EventsSettings()
    events_only = events_settings.worker == "only" and events_settings.queue(temporal.task_queue) != temporal.task_queue
    async with worker_activities(events_only) as acts, event_activities(events_settings) as events:
        workers = build_workers(client, temporal.task_queue, acts, events)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runs = [asyncio.create_task(w.run()) for w in workers]
        watch = asyncio.create_task(watch_orders(client))
        queues = ", ".join(w.task_queue for w in workers)
        log.info("worker polling task queue(s) %s on %s", queues, temporal.address)
        await asyncio.wait([*runs, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        if not all(r.done() for r in runs):
            log.info("shutting down: finishing in-flight work")
            await asyncio.gather(*(w.shutdown() for w, r in zip(workers, runs, strict=True) if not r.done()))
        watch.cancel()
        await asyncio.gather(*runs)
    telemetry.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
    exit_without_finalizing(0)
