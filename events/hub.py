"""``EventHubWorkflow``: one per issuer, the entity that holds its webhook endpoints and its event log.

The worker's emit activity signals batches of events here (signal-with-start); the hub
numbers them (the issuer's sequence: the feed's order and cursor), keeps the unsealed tail
in its state and seals every :data:`events.contract.PAGE_SIZE` events into a page (a closed
``EventPageWorkflow``, read by the feed and by deliveries of a backlog). Each endpoint has
several delivery loops here, one per shard of its cards (events.contract.shard_of: a card's
events all go through one loop, in order, and a slow batch for some cards does not hold the
others): one activity per batch, retried by the loop with exponential backoff (durable
timers), so the hub knows when an endpoint is failing. Nothing here waits
on an order, and no order waits on an endpoint (docs/events.md, "Shape and history cost").

Every input, signal and update argument is a message (events/contract.py), opened here by
the rules of the card workflows (workflows/messages.py, workflows/inputs.py): events from
the worker only, endpoint management from the issuer edge only (docs/events.md, "Who may
manage endpoints"); a refused update leaves no trace in the history.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as AttemptTimedOut
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from contracts import messages as kinds
    from contracts.messages import MAX_AGE, MAX_AHEAD, Message
    from events import contract as c
    from events.catalogue import Event
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
ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)  # the delivery loop retries, with its own backoff
ATTEMPT_FAILED = (ActivityError, ApplicationError, AttemptTimedOut)  # see _cause
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
DRAIN_PAUSE = timedelta(milliseconds=10)  # see run: ends the task that drained the loops


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
        self._draining = False
        self._start_bytes = 0  # the history's size when the run started: its carried state
        self._loops: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._skip: dict[tuple[str, int], set[str]] = {}

    # --- the signal: events from the card workflows (through the worker's emit activity)

    @workflow.signal(name=c.EVENTS_SIGNAL)
    def on_events(self, raw: RawValue = MISSING) -> None:
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
        self._gauges()

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
        self._start_loop(endpoint)
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
        self._gauges()
        return self._view(endpoint)

    @workflow.update(name=c.ROTATE_SECRET_UPDATE)
    def rotate_secret(self, raw: RawValue = MISSING) -> c.EndpointCreated:
        rotation = self._take(c.ROTATE_SECRET_UPDATE, raw, c.SecretRotation, kinds.ROTATE_SECRET)
        endpoint = self._endpoint(rotation.endpoint_id)
        until = (datetime.fromisoformat(rotation.at) + rotation.grace).isoformat()
        endpoint.secrets = [s for s in endpoint.secrets if not _expired(s, rotation.at)]
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
                await self._attempt(endpoint, seq - 1, seq, [event], [], force=True)
            except ATTEMPT_FAILED as err:
                result.failed[endpoint.endpoint_id] = _failure_text(err)
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
            _reshard(endpoint, self._s.policy.shards)
            self._start_loop(endpoint)
        while True:
            await workflow.wait_condition(lambda: len(self._s.tail) >= c.PAGE_SIZE or self._history_long())
            if len(self._s.tail) >= c.PAGE_SIZE:
                await self._seal()
                continue
            self._draining = True
            await self._drained()
            # The loops' last local attempts are markers in this task's completion. A
            # continue-as-new in that same completion is refused when a signal arrived meanwhile
            # (UnhandledCommand), and the replay that follows posts those attempts again. A timer
            # completes this task, markers included, before the continue-as-new is sent.
            await workflow.sleep(DRAIN_PAUSE)
            await self._drained()
            workflow.continue_as_new(c.HubInput(**stamp(), issuer_id=self._issuer, state=self._s))

    async def _drained(self) -> None:
        await workflow.wait_condition(
            lambda: all(t.done() for t in self._loops.values()) and workflow.all_handlers_finished()
        )

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

    # --- delivery, several loops per endpoint (one per shard of the cards)

    def _start_loop(self, endpoint: c.Endpoint) -> None:
        # An update-with-start creates the first endpoint before ``run`` starts the loops.
        for shard in range(len(endpoint.shard_cursors)):
            key = (endpoint.endpoint_id, shard)
            running = self._loops.get(key)
            if not self._draining and (running is None or running.done()):
                self._loops[key] = asyncio.create_task(self._deliver(endpoint, shard))

    async def _deliver(self, endpoint: c.Endpoint, shard: int) -> None:
        s = self._s
        shards = len(endpoint.shard_cursors)
        skip = self._skip.setdefault((endpoint.endpoint_id, shard), set())
        fast = True  # off after a fast attempt ran out of time, until an attempt succeeds
        while True:
            await workflow.wait_condition(
                lambda: (
                    self._draining
                    or (
                        endpoint.status != c.EndpointStatus.DISABLED and endpoint.shard_cursors[shard] < s.last_sequence
                    )
                )
            )
            if self._draining:
                return
            after = endpoint.shard_cursors[shard]
            upto = min(s.last_sequence, after + s.policy.batch_size)
            in_range = [e for e in s.tail if after < (e.sequence or 0) <= upto]
            in_tail = [e for e in in_range if c.shard_of(e.card_id, shards) == shard]
            if len(in_range) == upto - after and not any(endpoint.wants(e.type) for e in in_tail):
                self._advance(endpoint, shard, upto)  # nothing of its cards it subscribed to: no activity
                continue
            local = fast and endpoint.shard_failures[shard] == 0 and s.policy.fast_attempt_timeout > timedelta(0)
            try:
                result = await self._attempt(endpoint, after, upto, in_tail, sorted(skip), shard=shard, local=local)
            except ATTEMPT_FAILED as err:
                if local and isinstance(_cause(err), AttemptTimedOut):
                    # A slow endpoint, not a failing one: the same batch at once, as an activity
                    # that may take the whole attempt's time (what it did deliver is posted again).
                    fast = False
                    continue
                skip.update(_delivered_ids(err))
                delay = self._failed(endpoint, shard, _failure_text(err))
                try:
                    await workflow.wait_condition(lambda: self._draining, timeout=delay)
                except TimeoutError:
                    pass
                continue
            skip.clear()
            fast = True
            self._advance(endpoint, shard, upto)
            endpoint.delivered += result.delivered
            endpoint.shard_failures[shard] = 0
            if not any(endpoint.shard_failures):
                endpoint.failures, endpoint.failing_since, endpoint.last_error = 0, None, None
                if endpoint.status == c.EndpointStatus.FAILING:
                    endpoint.status = c.EndpointStatus.ENABLED
                    workflow.logger.info("endpoint %s recovered", endpoint.endpoint_id)
            else:
                endpoint.failures = max(endpoint.shard_failures)
            self._gauges()

    def _advance(self, endpoint: c.Endpoint, shard: int, upto: int) -> None:
        endpoint.shard_cursors[shard] = upto
        endpoint.cursor = min(endpoint.shard_cursors)

    async def _attempt(
        self,
        endpoint: c.Endpoint,
        after: int,
        upto: int,
        events: list[Event],
        skip: list[str],
        *,
        force: bool = False,
        shard: int | None = None,
        local: bool = False,
    ) -> c.DeliverResult:
        """One attempt. ``local``: a local activity, run within this workflow task (its result
        comes back without a task dispatch, no activity events in the history), bounded by the
        policy's ``fast_attempt_timeout``; else an activity, heartbeating, for the attempt's whole
        time. The hub's task stays open while a local attempt runs, so only a loop whose endpoint
        answered its last attempt runs one (docs/events.md, "Shape and history cost")."""
        now = workflow.now().isoformat()
        target = c.Target(
            endpoint_id=endpoint.endpoint_id,
            url=endpoint.url,
            secrets=[s.value for s in endpoint.secrets if not _expired(s, now)],
            event_types=["*"] if force else endpoint.event_types,
        )
        inp = c.DeliverInput(
            issuer_id=self._issuer,
            target=target,
            after=after,
            upto=upto,
            events=events,
            tail_from=0 if shard is None else self._s.sealed_upto + 1,
            skip=skip,
            backlog=self._s.last_sequence - after,
            shard=shard or 0,
            shards=1 if shard is None else len(endpoint.shard_cursors),
        )
        summary = f"Deliver events {after + 1}..{upto} to {endpoint.endpoint_id}" + (
            "" if shard is None else f" (cards of shard {shard})"
        )
        if local:
            return await workflow.execute_local_activity(
                c.DELIVER_EVENTS,
                inp,
                result_type=c.DeliverResult,
                start_to_close_timeout=self._s.policy.fast_attempt_timeout,
                retry_policy=ONE_ATTEMPT,
                summary=summary,
            )
        return await workflow.execute_activity(
            c.DELIVER_EVENTS,
            inp,
            result_type=c.DeliverResult,
            start_to_close_timeout=self._s.policy.attempt_timeout,
            heartbeat_timeout=self._s.policy.heartbeat_timeout,
            retry_policy=ONE_ATTEMPT,
            summary=summary,
        )

    def _failed(self, endpoint: c.Endpoint, shard: int, error: str) -> timedelta:
        """Count a failed attempt of one loop; mark the endpoint failing, disable it after the retry
        window. The wait before that loop's next attempt (each loop backs off on its own count)."""
        policy, now = self._s.policy, workflow.now()
        endpoint.shard_failures[shard] += 1
        endpoint.failures = max(endpoint.shard_failures)
        endpoint.last_error = error[:300]
        endpoint.failing_since = endpoint.failing_since or now.isoformat()
        if endpoint.failures >= policy.failing_after and endpoint.status == c.EndpointStatus.ENABLED:
            endpoint.status = c.EndpointStatus.FAILING
            workflow.logger.warning("endpoint %s is failing: %s", endpoint.endpoint_id, endpoint.last_error)
        if now - datetime.fromisoformat(endpoint.failing_since) >= policy.retry_for:
            endpoint.status = c.EndpointStatus.DISABLED
            workflow.logger.warning("endpoint %s disabled after failing for %s", endpoint.endpoint_id, policy.retry_for)
        self._gauges()
        failures = endpoint.shard_failures[shard]
        return min(policy.retry_initial * 2 ** min(failures - 1, 30), policy.retry_max_interval)

    def _gauges(self) -> None:
        """Backlog and failing state per endpoint, replay-safe (workflow.metric_meter())."""
        meter = workflow.metric_meter()
        backlog = meter.create_gauge("webhook_backlog_events", "Events not yet delivered to the endpoint")
        failing = meter.create_gauge("webhook_endpoint_failing", "1 while the endpoint's deliveries keep failing")
        for e in self._s.endpoints:
            labels = {"issuer_id": self._issuer, "endpoint_id": e.endpoint_id}
            backlog.set(self._s.last_sequence - e.cursor if e.status != c.EndpointStatus.DISABLED else 0, labels)
            failing.set(int(e.status != c.EndpointStatus.ENABLED), labels)

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
            secrets=sum(1 for s in e.secrets if not _expired(s, now)),
        )


def _reshard(endpoint: c.Endpoint, shards: int) -> None:
    """Give the endpoint ``shards`` loops when that cannot reorder a card's events: while its
    loops stand at one cursor (an endpoint kept from before the loops, or with no split
    backlog) and none is failing. Otherwise it keeps its loops until they meet."""
    if not endpoint.shard_cursors:
        endpoint.shard_cursors = [endpoint.cursor] * shards
        endpoint.shard_failures = [endpoint.failures] * shards
    elif len(set(endpoint.shard_cursors)) == 1 and not any(endpoint.shard_failures):
        endpoint.shard_cursors = [endpoint.cursor] * shards
        endpoint.shard_failures = [0] * shards


def _expired(secret: c.Secret, now: str) -> bool:
    return secret.expires_at is not None and datetime.fromisoformat(secret.expires_at) <= datetime.fromisoformat(now)


def _cause(err: Exception) -> BaseException | None:
    """An activity's failure is an ActivityError around its cause; a local activity's is the
    cause itself (its ApplicationError, or the TimeoutError of its time running out)."""
    return err.cause if isinstance(err, ActivityError) else err


def _failure_text(err: Exception) -> str:
    cause = _cause(err)
    return str(cause.message if isinstance(cause, ApplicationError) else (cause or err))


def _delivered_ids(err: Exception) -> list[str]:
    cause = _cause(err)
    if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], list):
        return [str(i) for i in cause.details[0]]
    return []
