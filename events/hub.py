"""``EventHubWorkflow``: one per issuer, the entity that holds its webhook endpoints and its event log.

The worker's emit activity signals batches of events here (signal-with-start); the hub
numbers them (the issuer's sequence: the feed's order and cursor), keeps the unsealed tail
in its state and seals every :data:`events.contract.PAGE_SIZE` events into a page (a closed
``EventPageWorkflow``, read by the feed and by deliveries of a backlog). Each endpoint has
a delivery loop here: one activity per batch, retried by the loop with exponential
backoff (durable timers), so the hub knows when an endpoint is failing. Nothing here waits
on an order, and no order waits on an endpoint (docs/events.md, "Shape and history cost").
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from events import contract as c
    from events.catalogue import Event

# Event ids remembered to drop a batch sent twice (an emit retried after its signal landed).
RECENT_IDS = 2000
ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)  # the delivery loop retries, with its own backoff


@workflow.defn(name=c.PAGE_WORKFLOW_TYPE)
class EventPageWorkflow:
    """A sealed page of an issuer's events: its input, kept by Temporal as long as the namespace retains it."""

    @workflow.run
    async def run(self, page: c.EventPage) -> c.EventPage:
        return page


@workflow.defn(name=c.HUB_WORKFLOW_TYPE)
class EventHubWorkflow:
    @workflow.init
    def __init__(self, inp: c.HubInput) -> None:
        self._issuer = inp.issuer_id
        self._s = inp.state.model_copy(deep=True) if inp.state else c.HubState()
        self._draining = False
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._skip: dict[str, set[str]] = {}

    # --- the signal: events from the card workflows (through the worker's emit activity)

    @workflow.signal(name=c.EVENTS_SIGNAL)
    def on_events(self, batch: c.EventBatch) -> None:
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

    @workflow.update(name=c.CREATE_ENDPOINT_UPDATE)
    def create_endpoint(self, spec: c.EndpointSpec) -> c.EndpointCreated:
        endpoint = c.Endpoint(
            endpoint_id=f"ep_{workflow.uuid4().hex[:20]}",
            url=spec.url,
            event_types=spec.event_types,
            description=spec.description,
            secrets=[c.Secret(value=spec.secret, created_at=spec.created_at)],
            created_at=spec.created_at,
            cursor=self._s.last_sequence,  # from now on; earlier events are in the feed
        )
        self._s.endpoints.append(endpoint)
        self._start_loop(endpoint)
        return c.EndpointCreated(endpoint=self._view(endpoint), secret=spec.secret)

    @workflow.update(name=c.UPDATE_ENDPOINT_UPDATE)
    def update_endpoint(self, change: c.EndpointChange) -> c.EndpointView:
        endpoint = self._endpoint(change.endpoint_id)
        for name in ("event_types", "url", "description"):
            if (value := getattr(change, name)) is not None:
                setattr(endpoint, name, value)
        if change.status == c.EndpointStatus.DISABLED:
            endpoint.status = c.EndpointStatus.DISABLED
        elif change.status == c.EndpointStatus.ENABLED and endpoint.status == c.EndpointStatus.DISABLED:
            endpoint.status = c.EndpointStatus.ENABLED
            endpoint.failures, endpoint.failing_since = 0, None
        self._gauges()
        return self._view(endpoint)

    @workflow.update(name=c.ROTATE_SECRET_UPDATE)
    def rotate_secret(self, rotation: c.SecretRotation) -> c.EndpointCreated:
        endpoint = self._endpoint(rotation.endpoint_id)
        until = (datetime.fromisoformat(rotation.at) + rotation.grace).isoformat()
        endpoint.secrets = [s for s in endpoint.secrets if not _expired(s, rotation.at)]
        for old in endpoint.secrets:
            if old.expires_at is None or datetime.fromisoformat(old.expires_at) > datetime.fromisoformat(until):
                old.expires_at = until
        endpoint.secrets.append(c.Secret(value=rotation.secret, created_at=rotation.at))
        return c.EndpointCreated(endpoint=self._view(endpoint), secret=rotation.secret)

    @update_endpoint.validator
    def _known_endpoint(self, change: c.EndpointChange) -> None:
        self._endpoint(change.endpoint_id)

    @rotate_secret.validator
    def _known_rotated(self, rotation: c.SecretRotation) -> None:
        self._endpoint(rotation.endpoint_id)

    @workflow.update(name=c.REDELIVER_UPDATE)
    async def redeliver(self, req: c.Redelivery) -> c.RedeliveryResult:
        """One event again, out of band (one attempt each): the caller sees the answer."""
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
            except ActivityError as err:
                result.failed[endpoint.endpoint_id] = _failure_text(err)
            else:
                result.delivered_to.append(endpoint.endpoint_id)
        return result

    @redeliver.validator
    def _known_target(self, req: c.Redelivery) -> None:
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
    async def run(self, inp: c.HubInput) -> None:
        for endpoint in self._s.endpoints:
            self._start_loop(endpoint)
        while True:
            await workflow.wait_condition(
                lambda: len(self._s.tail) >= c.PAGE_SIZE or workflow.info().is_continue_as_new_suggested()
            )
            if len(self._s.tail) >= c.PAGE_SIZE:
                await self._seal()
                continue
            self._draining = True
            await workflow.wait_condition(
                lambda: all(t.done() for t in self._loops.values()) and workflow.all_handlers_finished()
            )
            workflow.continue_as_new(c.HubInput(issuer_id=self._issuer, state=self._s))

    async def _seal(self) -> None:
        s = self._s
        events, first = s.tail[: c.PAGE_SIZE], s.sealed_upto + 1
        page = c.page_of(first)
        await workflow.start_child_workflow(
            c.PAGE_WORKFLOW_TYPE,
            c.EventPage(issuer_id=self._issuer, page=page, events=events),
            id=c.page_id(self._issuer, page),
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=f"events {first}..{first + len(events) - 1}",
        )
        s.sealed_upto += len(events)
        del s.tail[: len(events)]

    # --- delivery, one loop per endpoint

    def _start_loop(self, endpoint: c.Endpoint) -> None:
        # An update-with-start creates the first endpoint before ``run`` starts the loops.
        running = self._loops.get(endpoint.endpoint_id)
        if not self._draining and (running is None or running.done()):
            self._loops[endpoint.endpoint_id] = asyncio.create_task(self._deliver(endpoint))

    async def _deliver(self, endpoint: c.Endpoint) -> None:
        s = self._s
        skip = self._skip.setdefault(endpoint.endpoint_id, set())
        while True:
            await workflow.wait_condition(
                lambda: (
                    self._draining
                    or (endpoint.status != c.EndpointStatus.DISABLED and endpoint.cursor < s.last_sequence)
                )
            )
            if self._draining:
                return
            after, upto = endpoint.cursor, min(s.last_sequence, endpoint.cursor + s.policy.batch_size)
            in_tail = [e for e in s.tail if after < (e.sequence or 0) <= upto]
            if len(in_tail) == upto - after and not any(endpoint.wants(e.type) for e in in_tail):
                endpoint.cursor = upto  # nothing it subscribed to: no activity
                continue
            try:
                result = await self._attempt(endpoint, after, upto, in_tail, sorted(skip))
            except ActivityError as err:
                skip.update(_delivered_ids(err))
                delay = self._failed(endpoint, _failure_text(err))
                try:
                    await workflow.wait_condition(lambda: self._draining, timeout=delay)
                except TimeoutError:
                    pass
                continue
            skip.clear()
            endpoint.cursor = upto
            endpoint.delivered += result.delivered
            endpoint.failures, endpoint.failing_since, endpoint.last_error = 0, None, None
            if endpoint.status == c.EndpointStatus.FAILING:
                endpoint.status = c.EndpointStatus.ENABLED
                workflow.logger.info("endpoint %s recovered", endpoint.endpoint_id)
            self._gauges()

    async def _attempt(
        self, endpoint: c.Endpoint, after: int, upto: int, events: list[Event], skip: list[str], *, force: bool = False
    ) -> c.DeliverResult:
        now = workflow.now().isoformat()
        target = c.Target(
            endpoint_id=endpoint.endpoint_id,
            url=endpoint.url,
            secrets=[s.value for s in endpoint.secrets if not _expired(s, now)],
            event_types=["*"] if force else endpoint.event_types,
        )
        return await workflow.execute_activity(
            c.DELIVER_EVENTS,
            c.DeliverInput(
                issuer_id=self._issuer,
                target=target,
                after=after,
                upto=upto,
                events=events,
                skip=skip,
                backlog=self._s.last_sequence - endpoint.cursor,
            ),
            result_type=c.DeliverResult,
            start_to_close_timeout=self._s.policy.attempt_timeout,
            heartbeat_timeout=self._s.policy.heartbeat_timeout,
            retry_policy=ONE_ATTEMPT,
            summary=f"Deliver events {after + 1}..{upto} to {endpoint.endpoint_id}",
        )

    def _failed(self, endpoint: c.Endpoint, error: str) -> timedelta:
        """Count a failed attempt; mark failing, disable after the retry window. The wait before the next."""
        policy, now = self._s.policy, workflow.now()
        endpoint.failures += 1
        endpoint.last_error = error[:300]
        endpoint.failing_since = endpoint.failing_since or now.isoformat()
        if endpoint.failures >= policy.failing_after and endpoint.status == c.EndpointStatus.ENABLED:
            endpoint.status = c.EndpointStatus.FAILING
            workflow.logger.warning("endpoint %s is failing: %s", endpoint.endpoint_id, endpoint.last_error)
        if now - datetime.fromisoformat(endpoint.failing_since) >= policy.retry_for:
            endpoint.status = c.EndpointStatus.DISABLED
            workflow.logger.warning("endpoint %s disabled after failing for %s", endpoint.endpoint_id, policy.retry_for)
        self._gauges()
        return min(policy.retry_initial * 2 ** min(endpoint.failures - 1, 30), policy.retry_max_interval)

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
            **e.model_dump(exclude={"secrets"}),
            backlog=max(0, self._s.last_sequence - e.cursor),
            secrets=sum(1 for s in e.secrets if not _expired(s, now)),
        )


def _expired(secret: c.Secret, now: str) -> bool:
    return secret.expires_at is not None and datetime.fromisoformat(secret.expires_at) <= datetime.fromisoformat(now)


def _failure_text(err: ActivityError) -> str:
    cause = err.cause
    return str(cause.message if isinstance(cause, ApplicationError) else (cause or err))


def _delivered_ids(err: ActivityError) -> list[str]:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], list):
        return [str(i) for i in cause.details[0]]
    return []
