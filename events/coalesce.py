"""One signal for the events of many orders: the worker gathers what its card workflows emit.

Every state change of every order would otherwise be one signal to the issuer's hub: a
history event and a workflow task on the hub each, and the hub is one workflow per issuer.
The emit activities running in this worker share one signal-with-start instead; each returns
once that signal is in Temporal's history, so an order's events are durable before its
workflow task completes (docs/events.md, "Shape and history cost").

Group commit: one signal per hub is in flight from this worker at a time. Events emitted while
it is on its way go together in the next one, sent as soon as it landed (after ``flush_s``
when the worker was idle). So the hub's signal rate follows how fast Temporal takes them, not
the emit rate: concurrent signals to the one hub workflow contend for its lock, and on a loaded
server that held the hub's own tasks back for seconds (docs/benchmarks.md, "Events: the hub's
stalled tasks").
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from temporalio.client import Client

from events import contract as c
from events.catalogue import Event

# Events per signal: a signal is one payload, which Temporal limits (2 MB by default).
MAX_EVENTS_PER_SIGNAL = 500


@dataclass
class _Pending:
    events: list[Event] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


@dataclass
class _Hub:
    pending: _Pending = field(default_factory=_Pending)
    sender: asyncio.Task[None] | None = None


class Coalescer:
    def __init__(self, flush_s: float, policy: c.DeliveryPolicy) -> None:
        self._flush_s = flush_s
        self._policy = policy
        self._hubs: dict[tuple[str, str], _Hub] = {}

    async def emit(self, client: Client, task_queue: str, issuer_id: str, events: list[Event]) -> None:
        key = (issuer_id, task_queue)
        hub = self._hubs.setdefault(key, _Hub())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        hub.pending.events += events
        hub.pending.waiters.append(waiter)
        if hub.sender is None or hub.sender.done():
            hub.sender = asyncio.create_task(self._send_all(client, key, hub))
        await waiter

    async def _send_all(self, client: Client, key: tuple[str, str], hub: _Hub) -> None:
        await asyncio.sleep(self._flush_s)
        # No await between the emptiness check and the return: an emit that comes after it
        # finds this task done and starts the next sender.
        while hub.pending.events:
            pending, hub.pending = hub.pending, _Pending()
            await self._send(client, key, pending)

    async def _send(self, client: Client, key: tuple[str, str], pending: _Pending) -> None:
        issuer_id, task_queue = key
        try:
            for start in range(0, len(pending.events), MAX_EVENTS_PER_SIGNAL):
                batch = c.EventBatch(events=pending.events[start : start + MAX_EVENTS_PER_SIGNAL], policy=self._policy)
                await client.start_workflow(
                    c.HUB_WORKFLOW_TYPE,
                    c.HubInput(issuer_id=issuer_id),
                    id=c.hub_id(issuer_id),
                    task_queue=task_queue,
                    start_signal=c.EVENTS_SIGNAL,
                    start_signal_args=[batch],
                    static_summary=f"Events and webhook endpoints of issuer {issuer_id}",
                )
        except Exception as err:  # every waiter's activity fails and is retried by its workflow
            for waiter in pending.waiters:
                if not waiter.done():
                    waiter.set_exception(err)
        else:
            for waiter in pending.waiters:
                if not waiter.done():
                    waiter.set_result(None)
