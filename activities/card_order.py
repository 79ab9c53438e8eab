"""The D1 activities: a card order's submit, status and pull & change, a D1 batch's
submission and the tracking hub's request (names and types: activities/contract.py). Each
is thin: one D1 call through activities/d1_calls.py, which heartbeats, checks the body for
card data and translates D1's errors into Temporal's retry vocabulary.
"""

from __future__ import annotations

from temporalio import activity

from activities import contract as api
from activities.contract import (
    BatchItemResult,
    BatchSubmitInput,
    BatchSubmitResult,
    PullAndChangeInput,
    PullAndChangeResult,
    StatusInput,
    SubmitInput,
    SubmitResult,
    TrackInput,
    TrackResult,
)
from activities.d1_calls import correlation_id, d1_call
from activities.d1_client import D1Client
from d1.notifications import OperationNotification


def _batch_item(entry: dict[str, object]) -> BatchItemResult:
    def text(key: str) -> str | None:
        value = entry.get(key)
        return str(value)[:500] if value is not None else None

    return BatchItemResult(
        card_id=text("cardId"), operation_id=text("operationId"), error_code=text("errorCode"), error=text("error")
    )


class D1Activities:
    """``clear_members``: top-level members the program sends outside the JWE on purpose
    (orders and batches only)."""

    def __init__(self, d1: D1Client, *, clear_members: frozenset[str] = frozenset()) -> None:
        self._d1 = d1
        self._clear_members = clear_members

    @activity.defn(name=api.SUBMIT_ORDER)
    async def submit_order(self, inp: SubmitInput) -> SubmitResult:
        cid = correlation_id(inp.issuer_id, inp.issuer_request_id)
        async with d1_call(inp.body, clear_members=self._clear_members):
            op_id = await self._d1.submit_order(inp.issuer_id, inp.card_id, inp.body, correlation_id=cid)
        return SubmitResult(operation_id=op_id)

    @activity.defn(name=api.FETCH_PRODUCTION_STATUS)
    async def fetch_production_status(self, inp: StatusInput) -> OperationNotification | None:
        cid = correlation_id(inp.issuer_id, inp.issuer_request_id)
        async with d1_call():
            return await self._d1.production_status(inp.issuer_id, inp.card_id, correlation_id=cid)

    @activity.defn(name=api.REQUEST_PULL_AND_CHANGE)
    async def request_pull_and_change(self, inp: PullAndChangeInput) -> PullAndChangeResult:
        """Ask D1 to cancel / accelerate / redirect. The correlation id is stable per change,
        so a retry after a lost answer is recognised by D1 (the emulator) as the same request."""
        cid = correlation_id(inp.issuer_id, f"{inp.issuer_request_id}:{inp.change_id}")
        async with d1_call(inp.body):
            op_id = await self._d1.pull_and_change(inp.issuer_id, inp.card_id, inp.body, correlation_id=cid)
        return PullAndChangeResult(operation_id=op_id or None)

    @activity.defn(name=api.SUBMIT_ORDER_BATCH)
    async def submit_order_batch(self, inp: BatchSubmitInput) -> BatchSubmitResult:
        """Many card items in one call to D1's "Order cards". One item with card data outside
        its ``encryptedData`` refuses the whole call (nothing is sent); D1's per-item answers
        come back in request order for the workflow to tell each card."""
        cid = correlation_id(inp.issuer_id, f"batch:{inp.batch_key}")
        async with d1_call(*inp.items, clear_members=self._clear_members):
            status, entries = await self._d1.submit_batch(inp.issuer_id, inp.items, correlation_id=cid)
        return BatchSubmitResult(http_status=status, results=[_batch_item(e) for e in entries])

    @activity.defn(name=api.REQUEST_TRACKING)
    async def request_tracking(self, inp: TrackInput) -> TrackResult:
        """Ask D1's tracking hub to follow a card produced outside Thales."""
        cid = correlation_id(inp.issuer_id, f"track:{inp.card_id}:{inp.tracking_type}")
        async with d1_call(inp.body):
            op_id = await self._d1.track_card(inp.issuer_id, inp.card_id, inp.body, correlation_id=cid)
        return TrackResult(operation_id=op_id or None)
