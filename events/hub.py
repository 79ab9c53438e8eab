"""``EventHubWorkflow``: one per issuer, the entity that holds its webhook endpoints and its event log.

The worker's emit activity signals batches of events here (signal-with-start); the hub
numbers them (the issuer's sequence: the feed's order and cursor), keeps the unsealed tail
in its state and seals every :data:`events.contract.PAGE_SIZE` events into a page (a closed
``EventPageWorkflow``, read by the feed and by deliveries of a backlog). Each endpoint has
several delivery loops in the hub's run, one per shard of its cards (events/delivery_loop.py).
Nothing here waits on an order, and no order waits on an endpoint (docs/events.md, "Shape and
history cost").

Every input, signal and update argument is a message (events/contract.py), opened here by
the rules of the card workflows (workflows/messages.py, workflows/inputs.py): events from
the worker only, endpoint management from the issuer edge only (docs/events.md, "Who may
manage endpoints"); a refused update leaves no trace in the history.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from contracts import messages as kinds
    from contracts.messages import MAX_AGE, MAX_AHEAD, Message
    from events import contract as c
    from events.delivery_loop import ATTEMPT_FAILED, Deliveries, failure_text, reshard
    from workflows.inputs import read_input, start_roles
    from workflows.messages import (
        ENDPOINT_MANAGERS,
        EVENT_EMITTERS,
        HUB_STARTERS,
        MISSING,
        PAGE_STARTERS,
        Gate,
        Window,
        refused_update,
        stamp,
    )

M = TypeVar("M", bound=Message)

# Event ids remembered to drop a batch sent twice (an emit retried after its signal landed).
RECENT_IDS = 2000
# How old a batch of events may be when the hub reads it. A batch waits in the hub's history
# while no worker runs the hub; a short window would drop events after an outage, while a
# replayed batch costs at most a duplicate (events are de-duplicated by id, here and by the
# receivers). Endpoint management keeps the short window of every message (contracts/messages.py).
BATCH_MAX_AGE = timedelta(days=7)
# Continue as new well before Temporal would suggest it (thousands of events, megabytes): a hub
# whose worker lost its cached run (a sticky task timed out under load, a restart) replays its
# whole history before the next delivery, every signal a sealed batch of events. A replay of
# 1,600 events took seconds under the bench's load; this keeps it to a fraction of a second,
# at the cost of one drain (the in-flight deliveries end) per ~1,000 events. The bytes are
# counted from the run's start: the state a run carries (its tail, up to a page of events, and
# the recent ids) is most of a megabyte on its own, and counting it made the hub continue as new
# every few seconds (docs/benchmarks.md, "Events: group commit and local attempts").
HISTORY_EVENTS = 1000
HISTORY_BYTES = 1_000_000
DRAIN_PAUSE = timedelta(milliseconds=10)  # see _next_task


@workflow.defn(name=c.PAGE_WORKFLOW_TYPE)
class EventPageWorkflow:
    """A sealed page of an issuer's events: its input, kept by Temporal as long as the namespace retains it."""

    @workflow.run
    async def run(self, raw: RawValue) -> c.EventPage:
        opened = read_input(raw, c.PageInput, kind=kinds.EVENT_PAGE_START, roles=PAGE_STARTERS)
        inp = opened.check(c.PageInput)
        # A plain model, not the message: a result is for readers (security/sealing.py READER).
        return c.EventPage(issuer_id=inp.issuer_id, page=inp.page, events=inp.events)


@workflow.defn(name=c.HUB_WORKFLOW_TYPE)
class EventHubWorkflow:
    @workflow.init
    def __init__(self, raw: RawValue) -> None:
        self._input = read_input(raw, c.HubInput, kind=kinds.EVENT_HUB_START, roles=start_roles(HUB_STARTERS))
        inp = self._input.value
        self._issuer = inp.issuer_id if inp is not None else "-"
        self._s = inp.state.model_copy(deep=True) if inp is not None and inp.state else c.HubState()
        self._manage = Gate(self._issuer, Window(MAX_AGE, MAX_AHEAD), self._s.seen_messages)
        self._batches = Gate(self._issuer, Window(BATCH_MAX_AGE, MAX_AHEAD), self._s.seen_batches)
        self._deliveries = Deliveries(self._issuer, self._s)
        self._signals = 0  # signals taken by this run (see _next_task)
        self._start_bytes = 0  # the history's size when the run started: its carried state

    # --- the signal: events from the card workflows (through the worker's emit activity)

    @workflow.signal(name=c.EVENTS_SIGNAL)
    def on_events(self, raw: RawValue = MISSING) -> None:
        self._signals += 1
        # Before ``run`` has checked the input (signal-with-start), a refused input takes nothing.
        if self._input.value is None:
            return
        batch = self._batches.take(c.EVENTS_SIGNAL, raw, c.EventBatch, EVENT_EMITTERS, kinds.EVENT_BATCH)
        if batch is None:
            return
        s = self._s
        s.policy = batch.policy
        recent = set(s.recent_ids)
        for event in batch.events:
            if event.id in recent:
                s.duplicates_dropped += 1
                continue
            recent.add(event.id)
            s.recent_ids.append(event.id)
            s.last_sequence += 1
            s.tail.append(event.model_copy(update={"sequence": s.last_sequence}))
        del s.recent_ids[:-RECENT_IDS]
        self._deliveries.gauges()

    # --- endpoint management (updates; the validators refuse an unknown endpoint without history)

    def _opened(self, name: str, raw: RawValue, model: type[M], kind: str) -> M:
        """The management message, checked (not yet accepted); ``refused_update`` otherwise."""
        if self._input.value is None:
            raise refused_update(name, "input refused")
        opened = self._manage.open(name, raw, model, ENDPOINT_MANAGERS, kind)
        if not opened.ok or opened.value is None:
            raise refused_update(name, opened.refusal or "invalid")
        return opened.value

    def _take(self, name: str, raw: RawValue, model: type[M], kind: str) -> M:
        msg = self._opened(name, raw, model, kind)
        self._manage.accept(msg)
        return msg

    @workflow.update(name=c.CREATE_ENDPOINT_UPDATE)
    def create_endpoint(self, raw: RawValue = MISSING) -> c.EndpointCreated:
        spec = self._take(c.CREATE_ENDPOINT_UPDATE, raw, c.EndpointSpec, kinds.CREATE_ENDPOINT)
        endpoint = c.Endpoint(
            # Base32 like event ids (events/from_order.py): no run of digits a PAN scanner would flag.
            endpoint_id="ep_" + base64.b32encode(workflow.uuid4().bytes).decode()[:20].lower(),
            url=spec.url,
            event_types=spec.event_types,
            description=spec.description,
            secrets=[c.Secret(value=spec.secret, created_at=spec.created_at)],
            created_at=spec.created_at,
            cursor=self._s.last_sequence,  # from now on; earlier events are in the feed
            shard_cursors=[self._s.last_sequence] * self._s.policy.shards,
            shard_failures=[0] * self._s.policy.shards,
        )
        self._s.endpoints.append(endpoint)
        self._deliveries.start(endpoint)
        return c.EndpointCreated(endpoint=self._view(endpoint), secret=spec.secret)

    @create_endpoint.validator
    def _valid_spec(self, raw: RawValue = MISSING) -> None:
        self._opened(c.CREATE_ENDPOINT_UPDATE, raw, c.EndpointSpec, kinds.CREATE_ENDPOINT)

    @workflow.update(name=c.UPDATE_ENDPOINT_UPDATE)
    def update_endpoint(self, raw: RawValue = MISSING) -> c.EndpointView:
        change = self._take(c.UPDATE_ENDPOINT_UPDATE, raw, c.EndpointChange, kinds.UPDATE_ENDPOINT)
        endpoint = self._endpoint(change.endpoint_id)
        for name in ("event_types", "url", "description"):
            if (value := getattr(change, name)) is not None:
                setattr(endpoint, name, value)
        if change.status == c.EndpointStatus.DISABLED:
            endpoint.status = c.EndpointStatus.DISABLED
        elif change.status == c.EndpointStatus.ENABLED and endpoint.status == c.EndpointStatus.DISABLED:
            endpoint.status = c.EndpointStatus.ENABLED
            endpoint.failures, endpoint.failing_since = 0, None
            endpoint.shard_failures = [0] * len(endpoint.shard_failures)
        self._deliveries.gauges()
        return self._view(endpoint)

    @workflow.update(name=c.ROTATE_SECRET_UPDATE)
    def rotate_secret(self, raw: RawValue = MISSING) -> c.EndpointCreated:
        rotation = self._take(c.ROTATE_SECRET_UPDATE, raw, c.SecretRotation, kinds.ROTATE_SECRET)
        endpoint = self._endpoint(rotation.endpoint_id)
        until = (datetime.fromisoformat(rotation.at) + rotation.grace).isoformat()
        endpoint.secrets = [s for s in endpoint.secrets if not s.expired(rotation.at)]
        for old in endpoint.secrets:
            if old.expires_at is None or datetime.fromisoformat(old.expires_at) > datetime.fromisoformat(until):
                old.expires_at = until
        endpoint.secrets.append(c.Secret(value=rotation.secret, created_at=rotation.at))
        return c.EndpointCreated(endpoint=self._view(endpoint), secret=rotation.secret)

    @update_endpoint.validator
    def _known_endpoint(self, raw: RawValue = MISSING) -> None:
        change = self._opened(c.UPDATE_ENDPOINT_UPDATE, raw, c.EndpointChange, kinds.UPDATE_ENDPOINT)
        self._endpoint(change.endpoint_id)

    @rotate_secret.validator
    def _known_rotated(self, raw: RawValue = MISSING) -> None:
        rotation = self._opened(c.ROTATE_SECRET_UPDATE, raw, c.SecretRotation, kinds.ROTATE_SECRET)
        self._endpoint(rotation.endpoint_id)

    @workflow.update(name=c.REDELIVER_UPDATE)
    async def redeliver(self, raw: RawValue = MISSING) -> c.RedeliveryResult:
        """One event again, out of band (one attempt each): the caller sees the answer."""
        req = self._take(c.REDELIVER_UPDATE, raw, c.Redelivery, kinds.REDELIVER)
        event = req.event
        targets = [
            e
            for e in self._s.endpoints
            if e.status != c.EndpointStatus.DISABLED
            and (e.endpoint_id == req.endpoint_id if req.endpoint_id else e.wants(event.type))
        ]
        result = c.RedeliveryResult(delivered_to=[], failed={})
        for endpoint in targets:
            seq = event.sequence or 0
            try:
                await self._deliveries.attempt(endpoint, seq - 1, seq, [event], [], force=True)
            except ATTEMPT_FAILED as err:
                result.failed[endpoint.endpoint_id] = failure_text(err)
            else:
                result.delivered_to.append(endpoint.endpoint_id)
        return result

    @redeliver.validator
    def _known_target(self, raw: RawValue = MISSING) -> None:
        req = self._opened(c.REDELIVER_UPDATE, raw, c.Redelivery, kinds.REDELIVER)
        if req.endpoint_id is not None:
            self._endpoint(req.endpoint_id)

    # --- queries

    @workflow.query(name=c.ENDPOINTS_QUERY)
    def endpoints(self) -> list[c.EndpointView]:
        return [self._view(e) for e in self._s.endpoints]

    @workflow.query(name=c.TAIL_QUERY)
    def tail(self, req: c.TailRequest) -> c.HubTail:
        after = [e for e in self._s.tail if (e.sequence or 0) > req.after][: req.limit]
        return c.HubTail(sealed_upto=self._s.sealed_upto, last_sequence=self._s.last_sequence, events=after)

    # --- the run: seal pages, continue as new when the history is long

    @workflow.run
    async def run(self, raw: RawValue) -> None:
        self._input.check(c.HubInput)
        self._start_bytes = workflow.info().get_current_history_size()
        for endpoint in self._s.endpoints:
            reshard(endpoint, self._s.policy.shards)
            self._deliveries.start(endpoint)
        while True:
            await workflow.wait_condition(lambda: len(self._s.tail) >= c.PAGE_SIZE or self._history_long())
            if len(self._s.tail) >= c.PAGE_SIZE:
                await self._seal()
                continue
            self._deliveries.draining = True
            await self._drained()
            # The loops' last local attempts are markers in this task's completion. A
            # continue-as-new in that same completion is refused when a signal arrived meanwhile
            # (UnhandledCommand), and the replay that follows posts those attempts again. This
            # task completes first, markers included.
            await self._next_task()
            await self._drained()
            workflow.continue_as_new(c.HubInput(**stamp(), issuer_id=self._issuer, state=self._s))

    async def _next_task(self) -> None:
        """Until a later workflow task: the next signal, or a short timer when none comes. Not
        the timer alone: under load, when signals come every few hundred milliseconds, the dev
        server's timers fired 2 to 3 s late, and the deliveries wait for the continue-as-new."""
        signals = self._signals
        try:
            await workflow.wait_condition(lambda: self._signals > signals, timeout=DRAIN_PAUSE)
        except TimeoutError:
            pass

    async def _drained(self) -> None:
        await workflow.wait_condition(lambda: self._deliveries.stopped() and workflow.all_handlers_finished())

    async def _seal(self) -> None:
        s = self._s
        events, first = s.tail[: c.PAGE_SIZE], s.sealed_upto + 1
        page = c.page_of(first)
        await workflow.start_child_workflow(
            c.PAGE_WORKFLOW_TYPE,
            c.PageInput(**stamp(), issuer_id=self._issuer, page=page, events=events),
            id=c.page_id(self._issuer, page),
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=f"events {first}..{first + len(events) - 1}",
        )
        s.sealed_upto += len(events)
        del s.tail[: len(events)]

    def _history_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= HISTORY_EVENTS
            or info.get_current_history_size() - self._start_bytes >= HISTORY_BYTES
        )

    def _endpoint(self, endpoint_id: str) -> c.Endpoint:
        for endpoint in self._s.endpoints:
            if endpoint.endpoint_id == endpoint_id:
                return endpoint
        raise ApplicationError(f"no endpoint {endpoint_id}", type="UnknownEndpoint", non_retryable=True)

    def _view(self, e: c.Endpoint) -> c.EndpointView:
        now = workflow.now().isoformat()
        return c.EndpointView(
            **e.model_dump(exclude={"secrets", "shard_cursors", "shard_failures"}),
            backlog=max(0, self._s.last_sequence - e.cursor),
            secrets=sum(1 for s in e.secrets if not s.expired(now)),
        )
