"""The worker side of events out: the card workflows' emit activity and the webhook delivery activity."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from contracts import card_order
from events import contract as c
from events.catalogue import Event
from events.coalesce import Coalescer
from events.endpoints import EndpointRefused, check_url
from events.metrics import DeliveryMetrics
from events.pages import EventLog
from events.signing import signed_headers
from settings import EventsSettings

DELIVERY_FAILED = "DeliveryFailed"


def delivery_policy(settings: EventsSettings) -> c.DeliveryPolicy:
    rounds = -(-settings.batch_size // settings.concurrency)
    return c.DeliveryPolicy(
        retry_initial=settings.retry_initial,
        retry_max_interval=settings.retry_max_interval,
        retry_for=settings.retry_for,
        failing_after=settings.failing_after,
        batch_size=settings.batch_size,
        shards=settings.delivery_shards,
        fast_attempt_timeout=timedelta(seconds=settings.fast_attempt_s),
        attempt_timeout=timedelta(seconds=settings.request_timeout_s * (rounds + 1) + 30),
        heartbeat_timeout=timedelta(seconds=settings.request_timeout_s + 10),
    )


class EventActivities:
    def __init__(self, settings: EventsSettings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http
        self._coalescer = Coalescer(settings.flush_interval_ms / 1000, delivery_policy(settings))
        self._log: EventLog | None = None

    @property
    def settings(self) -> EventsSettings:
        return self._settings

    @activity.defn(name=c.EMIT_EVENTS)
    async def emit(self, inp: c.EmitInput) -> str:
        """Local activity of the card workflows: what the hub got (c.emitted); "" tells the
        workflow that events are off."""
        if not self._settings.enabled:
            return ""
        await self._coalescer.emit(
            activity.client(), self._settings.queue(activity.info().task_queue), inp.issuer_id, inp.events
        )
        DeliveryMetrics.current().emitted(inp.issuer_id, len(inp.events))
        return c.emitted(inp.events)

    @activity.defn(name=c.DELIVER_EVENTS)
    async def deliver(self, inp: c.DeliverInput) -> c.DeliverResult:
        """Post each event of (after, upto] the endpoint subscribed to, in order per card, cards in
        parallel. Fails (one attempt; the hub retries) with the ids it did deliver, so that the
        next attempt skips them."""
        target, s = inp.target, self._settings
        try:
            await asyncio.to_thread(
                check_url, target.url, allow_loopback=s.allow_loopback, allowed_networks=s.allowed_networks
            )
        except EndpointRefused as err:
            raise ApplicationError(f"refused target: {err}", [], type=DELIVERY_FAILED, non_retryable=True) from None
        events = await self._events(inp)
        skip = set(inp.skip)
        todo = [
            e
            for e in events
            if e.id not in skip
            and ("*" in target.event_types or e.type in target.event_types)
            and c.shard_of(e.card_id, inp.shards) == inp.shard  # the other loops' cards
        ]
        cards: dict[str, list[Event]] = {}
        for event in todo:
            cards.setdefault(event.card_id, []).append(event)
        metrics = DeliveryMetrics.current()
        local = activity.info().is_local
        gate = asyncio.Semaphore(s.concurrency)
        delivered: list[str] = []
        errors: list[str] = []

        async def one_card(card_events: list[Event]) -> None:
            for event in card_events:  # a card's next event waits for this one
                async with gate:
                    error = await self._post(inp.issuer_id, target, event, metrics)
                if not local:  # a local activity has no heartbeat: the hub's task timeout bounds it
                    activity.heartbeat()
                if error is not None:
                    errors.append(error)
                    return
                delivered.append(event.id)

        await asyncio.gather(*(one_card(v) for v in cards.values()))
        if errors:
            raise ApplicationError(
                f"{len(errors)} card(s) not delivered to {target.endpoint_id}: {errors[0]}",
                sorted(skip | set(delivered)),
                type=DELIVERY_FAILED,
                non_retryable=True,
            )
        return c.DeliverResult(delivered=len(delivered), skipped=len(events) - len(todo))

    async def _events(self, inp: c.DeliverInput) -> list[Event]:
        if inp.tail_from:  # the events of other loops' cards are not sent: a gap before the first is not a page
            first_in_input = max(inp.after + 1, min(inp.tail_from, inp.upto + 1))
        else:
            first_in_input = min((e.sequence or 0 for e in inp.events), default=inp.upto + 1)
        older: list[Event] = []
        if first_in_input - 1 > inp.after:
            if self._log is None:
                self._log = EventLog(activity.client())
            older = await self._log.sealed(inp.issuer_id, inp.after, first_in_input - 1)
            known = {e.sequence for e in older}
            missing = [q for q in range(inp.after + 1, first_in_input) if q not in known]
            if missing:  # sealed after the hub built this input: still in the tail, or in a page by now
                tail = await self._log.tail(inp.issuer_id, inp.after)
                older += [e for e in (tail.events if tail else []) if (e.sequence or 0) in set(missing)]
        events = sorted(older + inp.events, key=lambda e: e.sequence or 0)
        return [e for e in events if inp.after < (e.sequence or 0) <= inp.upto]

    async def _post(self, issuer_id: str, target: c.Target, event: Event, metrics: DeliveryMetrics) -> str | None:
        body = event.body()
        headers = signed_headers(event.id, body, target.secrets)
        try:
            response = await self._http.post(target.url, content=body.encode(), headers=headers)
        except httpx.TimeoutException:
            metrics.attempt(issuer_id, target.endpoint_id, "timeout", None)
            return f"event {event.id}: no answer within {self._settings.request_timeout_s} s"
        except httpx.HTTPError as err:
            metrics.attempt(issuer_id, target.endpoint_id, "error", None)
            return f"event {event.id}: {type(err).__name__}"
        if 200 <= response.status_code < 300:
            lag = (datetime.now(UTC) - datetime.fromisoformat(event.emitted_at)).total_seconds()
            metrics.attempt(issuer_id, target.endpoint_id, "2xx", lag)
            return None
        metrics.attempt(issuer_id, target.endpoint_id, f"http_{response.status_code}", None)
        return f"event {event.id}: HTTP {response.status_code}"


@activity.defn(name=c.ORDER_MASKED_PAN)
async def order_masked_pan(order_workflow_id: str) -> str | None:
    """The masked PAN of a closed order, for the event its activation record raises on its
    behalf (workflows/activation.py): the order's view, by query (the worker replays the closed
    order for it; a rare call). None once Temporal no longer keeps the order (past retention)."""
    handle = activity.client().get_workflow_handle(order_workflow_id)
    try:
        view = await handle.query(card_order.VIEW_QUERY, result_type=card_order.OrderView)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return view.ref.masked_pan


@activity.defn(name=c.EMIT_EVENTS)
async def events_off(inp: c.EmitInput) -> str:
    """The emit activity of a worker built without events: every card workflow learns they are off."""
    return ""


@asynccontextmanager
async def event_activities(settings: EventsSettings) -> AsyncIterator[EventActivities]:
    # No redirects: a 3xx is a failure (a redirect could lead past the URL checks).
    timeout = httpx.Timeout(settings.request_timeout_s)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False) as http:
        yield EventActivities(settings, http)
