"""D1's batch "Order cards" API (contracts/d1_batch.py) seen from the starter; docs/order-format.md,
"D1 batches". A batch's workflow id derives from its cards' ids, so a re-run finds it again."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from contracts import d1_batch as api
from contracts.card_order import BatchMembership
from contracts.d1_batch import BatchCard, BatchInput
from settings import D1BatchSettings
from starter.edge import PreparedOrder
from starter.same_order import ensure_same_batch

if TYPE_CHECKING:
    from starter.api import CardOrders


@dataclass(frozen=True)
class BatchLimits:
    max_cards: int = 1000
    max_bytes: int = 1_500_000
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


def item_size(prepared: PreparedOrder) -> int:
    return len(json.dumps(d1_item(prepared), separators=(",", ":")))


def batches_of(prepared: Sequence[PreparedOrder], limits: BatchLimits) -> list[range]:
    """Positions of consecutive batches of at most ``max_cards`` cards and ``max_bytes`` of items,
    each of one issuer (D1's batch call is made on one issuer's path)."""
    batches: list[range] = []
    start, size = 0, 0
    for end, order in enumerate(prepared):
        size_of = item_size(order)
        full = end - start >= limits.max_cards or size + size_of > limits.max_bytes
        if end > start and (full or order.ref.issuer_id != prepared[start].ref.issuer_id):
            batches.append(range(start, end))
            start, size = end, 0
        size += size_of
    if start < len(prepared):
        batches.append(range(start, len(prepared)))
    return batches


def batch_workflow_id(batch: Sequence[PreparedOrder]) -> str:
    return api.workflow_id(batch[0].ref.issuer_id, api.batch_key(p.workflow_id for p in batch))


def as_member(prepared: PreparedOrder, batch_workflow_id: str) -> PreparedOrder:
    """The same order, waiting for its batch instead of calling D1 itself."""
    submission = prepared.input.submission
    assert submission is not None
    member = BatchMembership(batch_workflow_id=batch_workflow_id, encryption_kid=submission.encryption_kid)
    return replace(
        prepared,
        input=prepared.input.model_copy(update={"submission": None, "batch": member}),
        summary=prepared.summary + " · D1 batch",
    )


async def start_batch_workflow(orders: CardOrders, batch_id: str, members: Sequence[PreparedOrder]) -> bool:
    """Start the workflow that calls D1 once for ``members``; False when an earlier run did
    (:class:`~starter.same_order.ForeignStart` when the id is held by another batch)."""
    issuer_id = members[0].ref.issuer_id
    cards = [
        BatchCard(
            workflow_id=p.workflow_id, card_id=p.ref.card_id, issuer_request_id=p.ref.issuer_request_id, item=d1_item(p)
        )
        for p in members
    ]
    batch = BatchInput(issuer_id=issuer_id, cards=cards, give_up_after=orders.timing.submit_give_up_after)
    try:
        await orders.client.start_workflow(
            api.WORKFLOW_TYPE,
            batch,
            id=batch_id,
            task_queue=orders.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=f"D1 batch of {len(cards)} card(s) for issuer {issuer_id}",
        )
    except WorkflowAlreadyStartedError:
        # An earlier run of this batch (D1 is, or was, called once for it), unless someone else
        # took the id: then ForeignStart, and the batch's cards are reported failed.
        await ensure_same_batch(orders.client, batch_id, batch)
        return False
    return True
