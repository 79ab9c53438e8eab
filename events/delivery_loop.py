"""The delivery loops of one event hub run (events/hub.py): per endpoint, one loop per shard
of its cards (events.contract.shard_of: a card's events all go through one loop, in order,
and a slow batch for some cards does not hold the others). Each posts a batch at a time,
retries with exponential backoff on durable timers, and keeps the endpoint's failing state,
so the hub knows when an endpoint is failing (docs/events.md, "Shape and history cost").
Runs inside the workflow sandbox: no I/O, workflow APIs only.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as AttemptTimedOut

from events import contract as c
from events.catalogue import Event

ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)  # the delivery loop retries, with its own backoff
ATTEMPT_FAILED = (ActivityError, ApplicationError, AttemptTimedOut)  # see _cause


class Deliveries:
    """The loops of one run. ``draining``: the run is about to continue as new; each loop ends
    after its attempt in flight (the next run starts them again from the kept cursors)."""

    def __init__(self, issuer: str, state: c.HubState) -> None:
        self._issuer = issuer
        self._s = state
        self.draining = False
        self._loops: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._skip: dict[tuple[str, int], set[str]] = {}

    def start(self, endpoint: c.Endpoint) -> None:
        # An update-with-start creates the first endpoint before ``run`` starts the loops.
        for shard in range(len(endpoint.shard_cursors)):
            key = (endpoint.endpoint_id, shard)
            running = self._loops.get(key)
            if not self.draining and (running is None or running.done()):
                self._loops[key] = asyncio.create_task(self._deliver(endpoint, shard))

    def stopped(self) -> bool:
        return all(t.done() for t in self._loops.values())

    async def _deliver(self, endpoint: c.Endpoint, shard: int) -> None:
        s = self._s
        shards = len(endpoint.shard_cursors)
        skip = self._skip.setdefault((endpoint.endpoint_id, shard), set())
        fast = True  # off after a fast attempt ran out of time, until an attempt succeeds
        while True:
            await workflow.wait_condition(
                lambda: (
                    self.draining
                    or (
                        endpoint.status != c.EndpointStatus.DISABLED and endpoint.shard_cursors[shard] < s.last_sequence
                    )
                )
            )
            if self.draining:
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
                result = await self.attempt(endpoint, after, upto, in_tail, sorted(skip), shard=shard, local=local)
            except ATTEMPT_FAILED as err:
                if local and isinstance(_cause(err), AttemptTimedOut):
                    # A slow endpoint, not a failing one: the same batch at once, as an activity
                    # that may take the whole attempt's time (what it did deliver is posted again).
                    fast = False
                    continue
                skip.update(_delivered_ids(err))
                delay = self._failed(endpoint, shard, failure_text(err))
                try:
                    await workflow.wait_condition(lambda: self.draining, timeout=delay)
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
            self.gauges()

    def _advance(self, endpoint: c.Endpoint, shard: int, upto: int) -> None:
        endpoint.shard_cursors[shard] = upto
        endpoint.cursor = min(endpoint.shard_cursors)

    async def attempt(
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
            secrets=[s.value for s in endpoint.secrets if not s.expired(now)],
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
        self.gauges()
        failures = endpoint.shard_failures[shard]
        return min(policy.retry_initial * 2 ** min(failures - 1, 30), policy.retry_max_interval)

    def gauges(self) -> None:
        """Backlog and failing state per endpoint, replay-safe (workflow.metric_meter())."""
        meter = workflow.metric_meter()
        backlog = meter.create_gauge("webhook_backlog_events", "Events not yet delivered to the endpoint")
        failing = meter.create_gauge("webhook_endpoint_failing", "1 while the endpoint's deliveries keep failing")
        for e in self._s.endpoints:
            labels = {"issuer_id": self._issuer, "endpoint_id": e.endpoint_id}
            backlog.set(self._s.last_sequence - e.cursor if e.status != c.EndpointStatus.DISABLED else 0, labels)
            failing.set(int(e.status != c.EndpointStatus.ENABLED), labels)


def reshard(endpoint: c.Endpoint, shards: int) -> None:
    """Give the endpoint ``shards`` loops when that cannot reorder a card's events: while its
    loops stand at one cursor (an endpoint kept from before the loops, or with no split
    backlog) and none is failing. Otherwise it keeps its loops until they meet."""
    if not endpoint.shard_cursors:
        endpoint.shard_cursors = [endpoint.cursor] * shards
        endpoint.shard_failures = [endpoint.failures] * shards
    elif len(set(endpoint.shard_cursors)) == 1 and not any(endpoint.shard_failures):
        endpoint.shard_cursors = [endpoint.cursor] * shards
        endpoint.shard_failures = [0] * shards


def _cause(err: Exception) -> BaseException | None:
    """An activity's failure is an ActivityError around its cause; a local activity's is the
    cause itself (its ApplicationError, or the TimeoutError of its time running out)."""
    return err.cause if isinstance(err, ActivityError) else err


def failure_text(err: Exception) -> str:
    cause = _cause(err)
    return str(cause.message if isinstance(cause, ApplicationError) else (cause or err))


def _delivered_ids(err: Exception) -> list[str]:
    cause = _cause(err)
    if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], list):
        return [str(i) for i in cause.details[0]]
    return []
