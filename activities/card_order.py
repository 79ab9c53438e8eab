"""The activities of a card order: submit, status, pull & change (names and types:
activities/contract.py). Each is thin: one D1 call through activities/d1_calls.py, which
heartbeats, checks the body for card data and translates D1's errors into Temporal's
retry vocabulary.
"""

from __future__ import annotations

from temporalio import activity

from activities import contract as api
from activities.contract import PullAndChangeInput, PullAndChangeResult, StatusInput, SubmitInput, SubmitResult
from activities.d1_calls import correlation_id, d1_call
from activities.d1_client import D1Client
from d1.notifications import OperationNotification


class CardOrderActivities:
    """``clear_members``: top-level members the program sends outside the JWE on purpose."""

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
