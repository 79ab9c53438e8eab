"""The activity of the tracking hub: ask D1 to follow a card produced outside Thales."""

from __future__ import annotations

from temporalio import activity

from activities import contract as api
from activities.contract import TrackInput, TrackResult
from activities.d1_calls import correlation_id, d1_call
from activities.d1_client import D1Client


class TrackingActivities:
    def __init__(self, d1: D1Client) -> None:
        self._d1 = d1

    @activity.defn(name=api.REQUEST_TRACKING)
    async def request_tracking(self, inp: TrackInput) -> TrackResult:
        cid = correlation_id(inp.issuer_id, f"track:{inp.card_id}:{inp.tracking_type}")
        async with d1_call(inp.body):
            op_id = await self._d1.track_card(inp.issuer_id, inp.card_id, inp.body, correlation_id=cid)
        return TrackResult(operation_id=op_id or None)
