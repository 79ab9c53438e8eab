"""The activity of a D1 batch submission: many card items in one call to D1's "Order cards".

Every item is checked for card data outside its ``encryptedData`` before anything is sent
(one bad item refuses the whole call: nothing is sent, the batch workflow then refuses
every card with the reason). D1 answers per item; the activity returns those answers in
request order and lets the workflow tell each card. Errors of the whole call are
classified like a single order's (activities/card_order.py).
"""

from __future__ import annotations

from temporalio import activity

from activities import contract as api
from activities.contract import BatchItemResult, BatchSubmitInput, BatchSubmitResult
from activities.d1_calls import correlation_id, d1_call
from activities.d1_client import D1Client


def _result(entry: dict[str, object]) -> BatchItemResult:
    def text(key: str) -> str | None:
        value = entry.get(key)
        return str(value)[:500] if value is not None else None

    return BatchItemResult(
        card_id=text("cardId"), operation_id=text("operationId"), error_code=text("errorCode"), error=text("error")
    )


class BatchActivities:
    def __init__(self, d1: D1Client, *, clear_members: frozenset[str] = frozenset()) -> None:
        self._d1 = d1
        self._clear_members = clear_members

    @activity.defn(name=api.SUBMIT_ORDER_BATCH)
    async def submit_order_batch(self, inp: BatchSubmitInput) -> BatchSubmitResult:
        cid = correlation_id(inp.issuer_id, f"batch:{inp.batch_key}")
        async with d1_call(*inp.items, clear_members=self._clear_members):
            status, entries = await self._d1.submit_batch(inp.issuer_id, inp.items, correlation_id=cid)
        return BatchSubmitResult(http_status=status, results=[_result(e) for e in entries])
