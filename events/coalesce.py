"""One signal for the events of many orders: the worker gathers what its card workflows emit.

Every state change of every order would otherwise be one signal to the issuer's hub: a
history event and a workflow task on the hub each, and the hub is one workflow per issuer.
The emit activities running in this worker within ``flush_s`` share one signal-with-start
instead; each returns once that signal is in Temporal's history, so an order's events are
durable before its workflow task completes (docs/events.md, "Shape and history cost").
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


class Coalescer:
    def __init__(self, flush_s: float, policy: c.DeliveryPolicy) -> None:
        self._flush_s = flush_s
        self._policy = policy
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def emit(self, client: Client, task_queue: str, issuer_id: str, events: list[Event]) -> None:
        key = (issuer_id, task_queue)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending()
            task = asyncio.create_task(self._flush(client, key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending.events += events
        pending.waiters.append(waiter)
        await waiter

    async def _flush(self, client: Client, key: tuple[str, str]) -> None:
        await asyncio.sleep(self._flush_s)
        pending = self._pending.pop(key)  # what arrives from now on goes in the next signal
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
