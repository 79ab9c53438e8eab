"""The event hub's delivery policy over days, on the time-skipping test server: an endpoint
that keeps failing is marked failing, retried with backoff, disabled after the retry window
with its backlog kept, and delivered in full once enabled; a rotated secret stops signing
after its grace period; events come from the worker only and endpoints are managed by the
edge only (events/hub.py, its delivery loops in events/delivery_loop.py)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.messages import MESSAGE_REFUSED
from events import contract as c
from events.catalogue import Event
from events.hub import HISTORY_BYTES, HISTORY_EVENTS, EventHubWorkflow, EventPageWorkflow
from security.codec import generate_keys_file, load_codec
from temporal_client import data_converter
from tests.support.senders import as_role, as_senders
from tests.workflows.conftest import IssuedAtServerTime
from tests.workflows.conftest import test_server as time_skipping_server
from worker import workflow_runner

QUEUE = "hub-tests"
POLICY = c.DeliveryPolicy(
    retry_initial=timedelta(minutes=1),
    retry_max_interval=timedelta(hours=1),
    retry_for=timedelta(days=3),
    failing_after=3,
    batch_size=10,
)
# The cards of these tests: they spread over the delivery loops (shard_of, 2 or 4 loops).
CARDS = ("alpha", "bravo", "charlie")


@dataclass
class FakeEndpoint:
    up: bool = False
    attempts: int = 0
    delivered: list[str] = field(default_factory=list)
    secrets_seen: list[int] = field(default_factory=list)
    refused_cards: set[str] = field(default_factory=set)  # a batch with one of these fails
    local: list[bool] = field(default_factory=list)  # per attempt: a local activity (the fast path)?
    delay_s: float = 0.0  # a slow endpoint
    during: Callable[[], Awaitable[None]] | None = None  # run while an attempt is in flight

    @activity.defn(name=c.DELIVER_EVENTS)
    async def deliver(self, inp: c.DeliverInput) -> c.DeliverResult:
        self.attempts += 1
        self.local.append(activity.info().is_local)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.during is not None:
            await self.during()
        self.secrets_seen.append(len(inp.target.secrets))
        if not self.up or any(e.card_id in self.refused_cards for e in inp.events):
            raise ApplicationError("connection refused", [], type="DeliveryFailed", non_retryable=True)
        self.delivered += [e.id for e in inp.events if e.id not in inp.skip]
        return c.DeliverResult(delivered=len(inp.events), skipped=0)


@dataclass
class Hub:
    env: WorkflowEnvironment
    endpoint: FakeEndpoint
    handle: WorkflowHandle
    client: Client  # seals each message as its production sender, at the test server's time

    def as_role(self, sealer: str) -> WorkflowHandle:
        return as_role(self.client, sealer).get_workflow_handle(self.handle.id)


def event(n: int) -> Event:
    now = datetime.now(UTC).isoformat()
    return Event(
        id=f"evt_{n}", type="order.shipped", occurred_at=now, emitted_at=now, issuer_id="ISS", card_id=CARDS[n % 3],
        workflow_id=f"card-order:ISS:r{n % 3}",
    )  # fmt: skip


@pytest_asyncio.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    # The product's codec: the environment's own client is the worker's.
    codec = load_codec(generate_keys_file(tmp_path / "codec-keys.json"))
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=time_skipping_server(), data_converter=data_converter(codec)
    )
    config = env.client.config()
    config["data_converter"] = data_converter(as_senders(codec))
    config["interceptors"] = [*config["interceptors"], IssuedAtServerTime(env)]
    client = Client(**config)
    fake = FakeEndpoint()
    try:
        async with Worker(
            env.client,
            task_queue=QUEUE,
            workflows=[EventHubWorkflow, EventPageWorkflow],
            activities=[fake.deliver],
            workflow_runner=workflow_runner(strict=True),
        ):
            handle = await client.start_workflow(
                c.HUB_WORKFLOW_TYPE, c.HubInput(issuer_id="ISS"), id=c.hub_id("ISS"), task_queue=QUEUE
            )
            yield Hub(env, fake, handle, client)
    finally:
        await env.shutdown()


async def create(hub: Hub) -> str:
    now = (await hub.env.get_current_time()).isoformat()
    spec = c.EndpointSpec(url="https://hooks.example/x", event_types=["*"], secret="whsec_a", created_at=now)
    created = await hub.handle.execute_update(c.CREATE_ENDPOINT_UPDATE, spec, result_type=c.EndpointCreated)
    return created.endpoint.endpoint_id


async def view(hub: Hub) -> c.EndpointView:
    [endpoint] = await hub.handle.query(c.ENDPOINTS_QUERY, result_type=list[c.EndpointView])
    return endpoint


async def test_failing_for_three_days_then_disabled_then_the_backlog_on_enable(hub: Hub) -> None:
    endpoint_id = await create(hub)
    await hub.handle.signal(c.EVENTS_SIGNAL, c.EventBatch(events=[event(n) for n in range(25)], policy=POLICY))
    await hub.env.sleep(timedelta(minutes=10))  # 1 + 2 + 4 minutes of backoff: four attempts
    v = await view(hub)
    assert v.status == c.EndpointStatus.FAILING and v.failures >= 3 and v.backlog == 25
    assert v.last_error == "connection refused"
    await hub.env.sleep(timedelta(days=2))
    assert (await view(hub)).status == c.EndpointStatus.FAILING  # still retried: hourly by now
    attempts = hub.endpoint.attempts
    # Per delivery loop (one per shard of the cards with events): 7 in the first two hours, then one an hour.
    loops = len({c.shard_of(card, POLICY.shards) for card in CARDS})
    assert loops > 1  # the cards of this test spread over several loops
    assert 45 * loops <= attempts <= 60 * loops, attempts
    await hub.env.sleep(timedelta(days=1, hours=2))
    v = await view(hub)
    assert v.status == c.EndpointStatus.DISABLED and v.backlog == 25  # the backlog is kept
    attempts = hub.endpoint.attempts
    await hub.env.sleep(timedelta(days=1))
    assert hub.endpoint.attempts == attempts  # disabled: no more attempts
    hub.endpoint.up = True
    await hub.handle.execute_update(
        c.UPDATE_ENDPOINT_UPDATE,
        c.EndpointChange(endpoint_id=endpoint_id, status=c.EndpointStatus.ENABLED),
        result_type=c.EndpointView,
    )
    for _ in range(100):
        if len(hub.endpoint.delivered) >= 25:
            break
        await asyncio.sleep(0.05)
    assert sorted(hub.endpoint.delivered) == sorted(f"evt_{n}" for n in range(25))  # each once
    for card in range(3):  # in order per card (the loops of different cards interleave)
        assert [i for i in hub.endpoint.delivered if int(i[4:]) % 3 == card] == [f"evt_{n}" for n in range(card, 25, 3)]
    v = await view(hub)
    assert v.status == c.EndpointStatus.ENABLED and v.backlog == 0 and v.failures == 0


async def test_a_failing_card_holds_only_the_cards_of_its_delivery_loop(hub: Hub) -> None:
    hub.endpoint.up = True
    hub.endpoint.refused_cards = {CARDS[0]}
    await create(hub)
    await hub.handle.signal(c.EVENTS_SIGNAL, c.EventBatch(events=[event(n) for n in range(25)], policy=POLICY))
    await hub.env.sleep(timedelta(minutes=10))
    held = {card for card in CARDS if c.shard_of(card, POLICY.shards) == c.shard_of(CARDS[0], POLICY.shards)}
    assert held != set(CARDS)  # the cards of this test spread over several loops
    others = [f"evt_{n}" for n in range(25) if CARDS[n % 3] not in held]
    assert hub.endpoint.delivered == others  # in order, while c0's loop keeps failing
    v = await view(hub)
    assert v.status == c.EndpointStatus.FAILING and v.backlog == 25  # the cursor is the slowest loop's
    hub.endpoint.refused_cards = set()
    await hub.env.sleep(timedelta(minutes=10))
    assert sorted(hub.endpoint.delivered) == sorted(f"evt_{n}" for n in range(25))
    for card in range(3):
        assert [i for i in hub.endpoint.delivered if int(i[4:]) % 3 == card] == [f"evt_{n}" for n in range(card, 25, 3)]
    v = await view(hub)
    assert v.status == c.EndpointStatus.ENABLED and v.backlog == 0 and v.failures == 0


async def test_the_hub_continues_as_new_long_before_a_replay_is_costly(hub: Hub) -> None:
    hub.endpoint.up = True
    await create(hub)
    numbers, one_at_a_time = itertools.count(), asyncio.Lock()

    async def send() -> None:
        async with one_at_a_time:  # the hub gets the events in the order of their numbers
            n = next(numbers)
            await hub.handle.signal(c.EVENTS_SIGNAL, c.EventBatch(events=[event(n)], policy=POLICY))

    # Each delivery brings a new event while it is posted, so whenever the hub drains to continue
    # as new a delivery is in flight and a signal waits: the server refuses a continue-as-new
    # sent with that delivery's result (UnhandledCommand) and the run replays. What the run had
    # posted must not be posted again.
    hub.endpoint.during = send
    # A batch costs ~3 history events (the signal, a share of a workflow task, a delivery's
    # marker), fewer when the worker folds several signals into one task: send until it has
    # continued as new.
    first = hub.handle.result_run_id
    for _ in range(20):
        for _ in range(50):
            await send()
        if (await hub.client.get_workflow_handle(hub.handle.id).describe()).run_id != first:
            break
    # Real time, not the test server's: its time skipping has been seen to stall after a
    # continue-as-new with local activities (everything delivered, the new run idle).
    async with asyncio.timeout(30):
        while (current := await hub.client.get_workflow_handle(hub.handle.id).describe()).run_id == first:
            await asyncio.sleep(0.05)
        hub.endpoint.during = None
        sent = next(numbers)
        while len(set(hub.endpoint.delivered)) < sent:
            await asyncio.sleep(0.05)
    assert (current.history_length or 0) <= HISTORY_EVENTS
    assert sorted(hub.endpoint.delivered) == sorted(f"evt_{n}" for n in range(sent))  # each once
    for card in range(3):
        assert [i for i in hub.endpoint.delivered if int(i[4:]) % 3 == card] == [
            f"evt_{n}" for n in range(card, sent, 3)
        ]


async def test_a_healthy_endpoint_is_posted_from_the_hubs_task_a_failing_one_by_activities(hub: Hub) -> None:
    hub.endpoint.up = True
    await create(hub)
    await hub.handle.signal(c.EVENTS_SIGNAL, c.EventBatch(events=[event(0)], policy=POLICY))
    await hub.env.sleep(timedelta(seconds=5))
    assert hub.endpoint.delivered == ["evt_0"] and hub.endpoint.local == [True]
    hub.endpoint.up = False
    await hub.handle.signal(c.EVENTS_SIGNAL, c.EventBatch(events=[event(3)], policy=POLICY))  # the same card
    await hub.env.sleep(timedelta(minutes=4))  # a local attempt, then retries after 1 and 2 minutes
    assert hub.endpoint.local[1:] == [True, False, False], hub.endpoint.local
    hub.endpoint.up = True
    await hub.env.sleep(timedelta(minutes=5))  # the next retry, an activity, gets through
    assert hub.endpoint.delivered == ["evt_0", "evt_3"] and hub.endpoint.local[-1] is False
    await hub.handle.signal(c.EVENTS_SIGNAL, c.EventBatch(events=[event(6)], policy=POLICY))
    await hub.env.sleep(timedelta(seconds=5))
    assert hub.endpoint.delivered[-1] == "evt_6" and hub.endpoint.local[-1] is True  # healthy again: fast
    assert (await view(hub)).failures == 0


async def test_a_slow_endpoint_gets_the_batch_again_from_an_activity_without_counting_a_failure(hub: Hub) -> None:
    hub.endpoint.up = True
    hub.endpoint.delay_s = 0.8
    await create(hub)
    policy = POLICY.model_copy(update={"fast_attempt_timeout": timedelta(seconds=0.3)})
    await hub.handle.signal(c.EVENTS_SIGNAL, c.EventBatch(events=[event(0), event(3)], policy=policy))
    for _ in range(100):  # real seconds: the attempts' own time runs on the worker's clock
        v = await view(hub)
        if v.backlog == 0:
            break
        await asyncio.sleep(0.05)
    assert hub.endpoint.delivered == ["evt_0", "evt_3"]  # once each: the local attempt was cut short
    assert hub.endpoint.local == [True, False]
    assert v.status == c.EndpointStatus.ENABLED and v.failures == 0 and v.backlog == 0


async def test_a_run_carrying_a_full_tail_does_not_continue_as_new_at_once(hub: Hub) -> None:
    # A tail of a page less one event and the recent ids: over HISTORY_BYTES on its own, as a
    # busy issuer's hub carries it.
    tail = [
        event(n).model_copy(update={"sequence": n + 1, "data": {"message": "m" * 2_000}})
        for n in range(c.PAGE_SIZE - 1)
    ]
    state = c.HubState(last_sequence=len(tail), tail=tail, recent_ids=[e.id for e in tail])
    assert len(state.model_dump_json()) > HISTORY_BYTES
    handle = await hub.client.start_workflow(
        c.HUB_WORKFLOW_TYPE, c.HubInput(issuer_id="ISS2", state=state), id=c.hub_id("ISS2"), task_queue=QUEUE
    )
    await hub.env.sleep(timedelta(minutes=1))
    current = await hub.client.get_workflow_handle(c.hub_id("ISS2")).describe()
    assert current.run_id == handle.result_run_id, "it continued as new"
    assert current.status == WorkflowExecutionStatus.RUNNING


async def test_a_rotated_secret_stops_signing_after_its_grace(hub: Hub) -> None:
    hub.endpoint.up = True
    endpoint_id = await create(hub)
    now = await hub.env.get_current_time()
    rotation = c.SecretRotation(
        endpoint_id=endpoint_id, secret="whsec_b", at=now.isoformat(), grace=timedelta(hours=24)
    )
    rotated = await hub.handle.execute_update(c.ROTATE_SECRET_UPDATE, rotation, result_type=c.EndpointCreated)
    assert rotated.endpoint.secrets == 2
    await hub.handle.signal(c.EVENTS_SIGNAL, c.EventBatch(events=[event(1)], policy=POLICY))
    await hub.env.sleep(timedelta(hours=1))
    assert hub.endpoint.secrets_seen[-1] == 2  # both sign during the grace
    await hub.env.sleep(timedelta(hours=24))
    await hub.handle.signal(c.EVENTS_SIGNAL, c.EventBatch(events=[event(2)], policy=POLICY))
    await hub.env.sleep(timedelta(minutes=1))
    assert hub.endpoint.secrets_seen[-1] == 1
    assert (await view(hub)).secrets == 1


async def test_an_unknown_endpoint_is_refused_without_a_trace(hub: Hub) -> None:
    from temporalio.client import WorkflowUpdateFailedError

    with pytest.raises(WorkflowUpdateFailedError):
        await hub.handle.execute_update(
            c.UPDATE_ENDPOINT_UPDATE, c.EndpointChange(endpoint_id="ep_nope"), result_type=c.EndpointView
        )


async def refused(handle: WorkflowHandle, name: str, arg: object) -> None:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(name, arg, result_type=c.EndpointView)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == MESSAGE_REFUSED, cause


@pytest.mark.parametrize("sealer", ["receiver", "reader", "worker", "operator:mallory"])
async def test_only_the_edge_manages_endpoints(hub: Hub, sealer: str) -> None:
    endpoint_id = await create(hub)
    now = (await hub.env.get_current_time()).isoformat()
    other = hub.as_role(sealer)
    spec = c.EndpointSpec(url="https://attacker.example/x", event_types=["*"], secret="whsec_m", created_at=now)
    await refused(other, c.CREATE_ENDPOINT_UPDATE, spec)
    await refused(other, c.UPDATE_ENDPOINT_UPDATE, c.EndpointChange(endpoint_id=endpoint_id, url=spec.url))
    await refused(
        other, c.UPDATE_ENDPOINT_UPDATE, c.EndpointChange(endpoint_id=endpoint_id, status=c.EndpointStatus.DISABLED)
    )
    await refused(other, c.ROTATE_SECRET_UPDATE, c.SecretRotation(endpoint_id=endpoint_id, secret="whsec_m", at=now))
    await refused(other, c.REDELIVER_UPDATE, c.Redelivery(event=event(1), endpoint_id=endpoint_id))
    v = await view(hub)
    assert (v.url, v.status, v.secrets) == ("https://hooks.example/x", c.EndpointStatus.ENABLED, 1)
    assert hub.endpoint.attempts == 0


async def test_a_management_message_is_good_for_its_own_update_once(hub: Hub) -> None:
    endpoint_id = await create(hub)
    disable = c.EndpointChange(endpoint_id=endpoint_id, status=c.EndpointStatus.DISABLED)
    # A change's argument is no rotation's, even from the edge.
    await refused(hub.handle, c.ROTATE_SECRET_UPDATE, disable)
    await hub.handle.execute_update(c.UPDATE_ENDPOINT_UPDATE, disable, result_type=c.EndpointView)
    enable = c.EndpointChange(endpoint_id=endpoint_id, status=c.EndpointStatus.ENABLED)
    await hub.handle.execute_update(c.UPDATE_ENDPOINT_UPDATE, enable, result_type=c.EndpointView)
    # The disabling message again (copied from the history): refused, the endpoint stays enabled.
    now = await hub.env.get_current_time()
    with pytest.raises(WorkflowUpdateFailedError):
        await hub.as_role("edge").execute_update(
            c.UPDATE_ENDPOINT_UPDATE, disable.model_copy(update={"issued_at": now}), result_type=c.EndpointView
        )
    assert (await view(hub)).status == c.EndpointStatus.ENABLED


@pytest.mark.parametrize("sealer", ["edge", "receiver", "operator:mallory"])
async def test_events_come_from_the_worker_only(hub: Hub, sealer: str) -> None:
    hub.endpoint.up = True
    await create(hub)
    await hub.as_role(sealer).signal(c.EVENTS_SIGNAL, c.EventBatch(events=[event(1)], policy=POLICY))
    await hub.handle.signal(c.EVENTS_SIGNAL, c.EventBatch(events=[event(2)], policy=POLICY))  # as the worker
    await hub.env.sleep(timedelta(minutes=1))
    tail = await hub.handle.query(c.TAIL_QUERY, c.TailRequest(), result_type=c.HubTail)
    assert [e.id for e in tail.events] == ["evt_2"] and hub.endpoint.delivered == ["evt_2"]
