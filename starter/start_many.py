"""Starting many orders, the one way (alone or through D1's batch API, starter/d1_batches.py):
an order started earlier is recognised, and one refused or failed order does not stop the others."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from d1.order import CardOrder
from starter.api import CardOrders, OrderRefused, SubmittedOrder
from starter.d1_batches import BatchLimits, as_member, batch_workflow_id, batches_of, item_size, start_batch_workflow
from starter.edge import PreparedOrder
from starter.same_order import ForeignStart

AnyOrder = CardOrder | Mapping[str, Any] | PreparedOrder


@dataclass(frozen=True)
class Started:
    """One order's result: ``submitted`` (``created`` False when an earlier start is the answer),
    or why not: ``refused`` (the card has another open order) or ``failed`` (retrying may help)."""

    index: int  # the order's position in what was given
    submitted: SubmittedOrder | None = None
    refused: str | None = None
    failed: str | None = None
    d1_batch: str | None = None  # the D1 batch workflow the order waits for
    d1_batch_created: bool = False  # that batch workflow was started by this call


async def bounded(concurrency: int, jobs: Iterable[Callable[[], Awaitable[None]]]) -> None:
    """Run the jobs, at most ``concurrency`` at a time; a job is created only when a slot is free."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def run(job: Callable[[], Awaitable[None]]) -> None:
        try:
            await job()
        finally:
            gate.release()

    async with asyncio.TaskGroup() as tasks:
        for job in jobs:
            await gate.acquire()
            tasks.create_task(run(job))


def _failed(index: int, err: Exception) -> Started:
    return Started(index, failed=f"{type(err).__name__}: {str(err)[:200]}")


async def _attempt(index: int, start: Awaitable[SubmittedOrder]) -> Started:
    try:
        return Started(index, submitted=await start)
    except OrderRefused as err:
        return Started(index, refused=str(err))
    except Exception as err:  # reported per order; the others go on
        return _failed(index, err)


async def start_many(
    orders: CardOrders,
    items: Sequence[AnyOrder],
    *,
    d1_batches: BatchLimits | None = None,
    concurrency: int = 32,
    on_result: Callable[[Started], None] | None = None,
) -> list[Started]:
    """Start every order (a clear one is validated and encrypted first, as ``CardOrders.submit``
    does); the results in the order given. With ``d1_batches``, D1 batches are started one
    after another, each once its cards' workflows have started."""
    results: list[Started] = []

    def settle(result: Started) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    if d1_batches is None:

        async def alone(index: int, item: AnyOrder) -> None:
            start = orders.submit_prepared(item) if isinstance(item, PreparedOrder) else orders.submit(item)
            settle(await _attempt(index, start))

        await bounded(concurrency, (partial(alone, i, item) for i, item in enumerate(items)))
        return sorted(results, key=lambda r: r.index)

    prepared: list[tuple[int, PreparedOrder]] = []
    for index, item in enumerate(items):
        try:
            ready = item if isinstance(item, PreparedOrder) else orders.edge.prepare(item, timing=orders.timing)
        except Exception as err:  # the D1 key unreadable, an invalid order...: reported per order
            settle(_failed(index, err))
        else:
            prepared.append((index, ready))
    for span in batches_of([p for _, p in prepared], d1_batches):
        for result in await _start_batch(orders, [prepared[i] for i in span], concurrency):
            settle(result)
    return sorted(results, key=lambda r: r.index)


async def _start_batch(orders: CardOrders, batch: list[tuple[int, PreparedOrder]], concurrency: int) -> list[Started]:
    """One D1 batch: its cards' workflows (waiting for it), then the batch workflow that calls D1."""
    batch_id = batch_workflow_id([p for _, p in batch])
    cards: dict[int, Started] = {}

    async def member(index: int, prepared: PreparedOrder) -> None:
        cards[index] = await _attempt(index, orders.submit_prepared(as_member(prepared, batch_id)))

    await bounded(concurrency, (partial(member, i, p) for i, p in batch))
    members = [p for i, p in batch if cards[i].submitted is not None]
    try:
        created = bool(members) and await start_batch_workflow(orders, batch_id, members)
    except ForeignStart as err:  # the batch's id is held by another: its cards wait for nothing
        failed = f"{type(err).__name__}: {str(err)[:200]}"
        return [
            replace(cards[i], submitted=None, failed=failed, d1_batch=batch_id) if cards[i].submitted else cards[i]
            for i, _ in batch
        ]
    return [replace(cards[i], d1_batch=batch_id, d1_batch_created=created) for i, _ in batch]


class D1Batcher(AbstractAsyncContextManager["D1Batcher"]):
    """Orders arriving one at a time (an issuer service's stream), sent to D1 in batches: a
    batch goes when it is full (cards or bytes) or when its first order waited ``max_wait``.

        async with D1Batcher(orders) as batcher:
            submitted = await batcher.submit(order_dict)   # returns once its batch started

    An invalid order raises ``InvalidOrder`` before anything is queued."""

    def __init__(self, orders: CardOrders, limits: BatchLimits | None = None) -> None:
        self._orders = orders
        self._limits = limits or BatchLimits.from_settings(orders.edge.program.interface.batchMaxCards)
        self._pending: list[tuple[PreparedOrder, asyncio.Future[SubmittedOrder]]] = []
        self._size = 0
        self._timer: asyncio.Task[None] | None = None

    async def __aexit__(self, *exc: object) -> None:
        await self.flush()

    async def submit(self, order: CardOrder | Mapping[str, Any]) -> SubmittedOrder:
        prepared = self._orders.edge.prepare(order, timing=self._orders.timing)
        future: asyncio.Future[SubmittedOrder] = asyncio.get_running_loop().create_future()
        size, sends = item_size(prepared), []
        if self._pending and self._size + size > self._limits.max_bytes:
            sends.append(self._take())
        self._pending.append((prepared, future))
        self._size += size
        if len(self._pending) >= self._limits.max_cards:
            sends.append(self._take())
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later())
        for send in sends:
            await send
        return await future

    async def flush(self) -> None:
        await self._take()

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._limits.max_wait.total_seconds())
        await self._take()

    def _take(self) -> Coroutine[Any, Any, None]:
        """What is pending, as one batch to send (taken at once: later orders start the next)."""
        pending, self._pending, self._size = self._pending, [], 0
        if self._timer is not None and asyncio.current_task() is not self._timer:
            self._timer.cancel()
        self._timer = None
        return self._send(pending)

    async def _send(self, pending: list[tuple[PreparedOrder, asyncio.Future[SubmittedOrder]]]) -> None:
        if not pending:
            return
        try:
            results = await start_many(self._orders, [p for p, _ in pending], d1_batches=self._limits)
        except Exception as err:
            for _, future in pending:
                if not future.done():  # a submitter that gave up cancelled its own
                    future.set_exception(err)
            return
        for (_, future), result in zip(pending, results, strict=True):
            if future.done():
                continue
            if result.submitted is not None:
                future.set_result(result.submitted)
            else:
                future.set_exception(OrderRefused(result.refused or result.failed or "not started"))
