"""Submitting card orders to D1 in batches: D1's "Order cards" API (contracts/d1_batch.py).

Every card is validated and encrypted at the edge exactly as a single order, and is its own
``CardOrderWorkflow``. Only the call to D1 is shared: cards are grouped into batches of at
most ``max_cards`` (D1 documents 1 to 1,000) and ``max_bytes`` of D1 items (so one
batch's payload stays well inside Temporal's payload size limit), and per batch the
starter

1. starts every card's workflow in batch mode (it waits for its result; an order started
   by an earlier run is recognised by its id, as for single orders);
2. starts one ``D1BatchSubmissionWorkflow`` with the D1 items of those cards; its id is
   derived from the cards' workflow ids, so re-running an interrupted file finds the
   same batch instead of sending a second one.

D1 is idempotent on each card's ids (issuerId, cardId, issuerRequestId): even a card sent
in two batches (a file re-run after it changed) is produced once.

``D1Batcher`` does the same for orders that arrive one at a time (an issuer service's
stream): it collects prepared orders and flushes a batch when it is full or when the
oldest order waited ``max_wait``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from contracts import d1_batch as api
from contracts.card_order import BatchMembership
from contracts.d1_batch import BatchCard, BatchInput
from settings import D1BatchSettings
from starter.api import CardOrders, OrderRefused, SubmittedOrder
from starter.edge import PreparedOrder

DEFAULT_MAX_BYTES = 1_500_000


@dataclass(frozen=True)
class BatchLimits:
    max_cards: int = 1000
    max_bytes: int = DEFAULT_MAX_BYTES
    max_wait: timedelta = timedelta(seconds=2)

    @classmethod
    def from_settings(cls, program_max_cards: int, *, batch_size: int | None = None) -> BatchLimits:
        """``D1_BATCH_*``, capped by what the program agreed with Thales (``interface.batchMaxCards``)."""
        s = D1BatchSettings()
        cards = min(batch_size or s.max_cards, s.max_cards, program_max_cards)
        return cls(max_cards=cards, max_bytes=s.max_bytes, max_wait=s.max_wait)


def d1_item(prepared: PreparedOrder) -> dict[str, Any]:
    """The card's item of D1's batch body: the single order's body with its ``cardId``."""
    assert prepared.input.submission is not None, "an order prepared for D1 carries its body"
    return {"cardId": prepared.ref.card_id, **prepared.input.submission.body}


def _size(item: dict[str, Any]) -> int:
    return len(json.dumps(item, separators=(",", ":")))


def group(prepared: Sequence[PreparedOrder], limits: BatchLimits) -> list[list[PreparedOrder]]:
    """Consecutive batches of at most ``max_cards`` cards and ``max_bytes`` of items (pure)."""
    batches: list[list[PreparedOrder]] = []
    current: list[PreparedOrder] = []
    size = 0
    for order in prepared:
        item_size = _size(d1_item(order))
        if current and (len(current) >= limits.max_cards or size + item_size > limits.max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(order)
        size += item_size
    if current:
        batches.append(current)
    return batches


@dataclass
class BatchOutcome:
    """What starting one batch did, card by card."""

    batch_workflow_id: str
    submitted: list[tuple[PreparedOrder, SubmittedOrder]] = field(default_factory=list)
    refused: list[tuple[PreparedOrder, str]] = field(default_factory=list)
    failed: list[tuple[PreparedOrder, str]] = field(default_factory=list)
    batch_created: bool = False


def as_member(prepared: PreparedOrder, batch_workflow_id: str) -> PreparedOrder:
    """The same order, waiting for its batch instead of calling D1 itself."""
    submission = prepared.input.submission
    assert submission is not None
    member = BatchMembership(batch_workflow_id=batch_workflow_id, encryption_kid=submission.encryption_kid)
    return PreparedOrder(
        workflow_id=prepared.workflow_id,
        input=prepared.input.model_copy(update={"submission": None, "batch": member}),
        search_attributes=prepared.search_attributes,
        summary=prepared.summary + " · D1 batch",
        details=prepared.details,
        warnings=prepared.warnings,
    )


async def start_batch(
    orders: CardOrders,
    batch: Sequence[PreparedOrder],
    *,
    concurrency: int = 32,
    on_card: Callable[[], None] | None = None,
) -> BatchOutcome:
    """Start one batch: its card workflows, then the batch workflow that calls D1."""
    issuer_id = batch[0].ref.issuer_id
    key = api.batch_key(p.workflow_id for p in batch)
    batch_id = api.workflow_id(issuer_id, key)
    outcome = BatchOutcome(batch_id)
    gate = asyncio.Semaphore(concurrency)

    async def card(prepared: PreparedOrder) -> None:
        async with gate:
            try:
                submitted = await orders.submit_prepared(as_member(prepared, batch_id))
            except OrderRefused as err:
                outcome.refused.append((prepared, str(err)))
            except Exception as err:  # reported per card; the batch goes on without it
                outcome.failed.append((prepared, f"{type(err).__name__}: {str(err)[:200]}"))
            else:
                outcome.submitted.append((prepared, submitted))
        if on_card is not None:
            on_card()

    await asyncio.gather(*(card(p) for p in batch))
    members = [p for p, _ in outcome.submitted]
    if not members:
        return outcome
    by_id = {p.workflow_id: p for p in members}
    cards = [
        BatchCard(
            workflow_id=p.workflow_id, card_id=p.ref.card_id, issuer_request_id=p.ref.issuer_request_id, item=d1_item(p)
        )
        for p in batch
        if p.workflow_id in by_id
    ]
    try:
        await orders.client.start_workflow(
            api.WORKFLOW_TYPE,
            BatchInput(issuer_id=issuer_id, cards=cards, give_up_after=orders.timing.submit_give_up_after),
            id=batch_id,
            task_queue=orders.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=f"D1 batch of {len(cards)} card(s) for issuer {issuer_id}",
        )
        outcome.batch_created = True
    except WorkflowAlreadyStartedError:
        pass  # an earlier run started this batch: D1 is (or was) called once for it
    return outcome


async def submit_in_batches(
    orders: CardOrders,
    prepared: Sequence[PreparedOrder],
    *,
    limits: BatchLimits | None = None,
    concurrency: int = 32,
    on_card: Callable[[], None] | None = None,
) -> list[BatchOutcome]:
    """Group already prepared orders into D1 batches and start them, one batch after another
    (limits: ``D1_BATCH_*`` and the program's ``batchMaxCards`` unless given)."""
    limits = limits or BatchLimits.from_settings(orders.edge.program.interface.batchMaxCards)
    return [
        await start_batch(orders, batch, concurrency=concurrency, on_card=on_card) for batch in group(prepared, limits)
    ]


class D1Batcher:
    """Orders arriving one at a time, sent to D1 in batches (size, bytes or ``max_wait``).

        async with D1Batcher(orders) as batcher:
            submitted = await batcher.submit(order_dict)   # returns once its batch started

    ``submit`` validates and encrypts at once (an invalid order raises ``InvalidOrder``
    before anything is queued) and returns when the order's batch has been started in
    Temporal, from where the order is durable."""

    def __init__(self, orders: CardOrders, limits: BatchLimits | None = None) -> None:
        self._orders = orders
        self._limits = limits or BatchLimits.from_settings(orders.edge.program.interface.batchMaxCards)
        self._pending: list[tuple[PreparedOrder, asyncio.Future[SubmittedOrder]]] = []
        self._size = 0
        self._timer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> D1Batcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.flush()

    async def submit(self, order: Any) -> SubmittedOrder:
        prepared = self._orders.edge.prepare(order, timing=self._orders.timing)
        future: asyncio.Future[SubmittedOrder] = asyncio.get_running_loop().create_future()
        flush_now: Awaitable[None] | None = None
        async with self._lock:
            item_size = _size(d1_item(prepared))
            if self._pending and self._size + item_size > self._limits.max_bytes:
                flush_now = self._flush_locked()
            self._pending.append((prepared, future))
            self._size += item_size
            if len(self._pending) >= self._limits.max_cards:
                flush_now = self._flush_locked() if flush_now is None else flush_now
            elif self._timer is None:
                self._timer = asyncio.create_task(self._flush_later())
        if flush_now is not None:
            await flush_now
        return await future

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._limits.max_wait.total_seconds())
        self._timer = None
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            work = self._flush_locked()
        await work

    def _flush_locked(self) -> Awaitable[None]:
        pending, self._pending, self._size = self._pending, [], 0
        if self._timer is not None and asyncio.current_task() is not self._timer:
            self._timer.cancel()
            self._timer = None

        async def send() -> None:
            if not pending:
                return
            try:
                outcome = await start_batch(self._orders, [p for p, _ in pending])
            except Exception as err:
                for _, future in pending:
                    if not future.done():
                        future.set_exception(err)
                return
            results = {p.workflow_id: s for p, s in outcome.submitted}
            problems = {p.workflow_id: why for p, why in outcome.refused + outcome.failed}
            for prepared, future in pending:
                if prepared.workflow_id in results:
                    future.set_result(results[prepared.workflow_id])
                else:
                    future.set_exception(OrderRefused(problems.get(prepared.workflow_id, "not started")))

        return send()
