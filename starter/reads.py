"""Reading card orders and trackings through Temporal (the read half of :class:`starter.api.CardOrders`):
one order's view, result and handle, the visibility lists, a card's activation."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from contracts import card_order as api
from contracts import card_tracking as tracking_api
from contracts import search_attributes as sa
from contracts.card_order import OrderResult, OrderView
from contracts.card_tracking import TrackingResult, TrackingView
from starter.edge import refuse_card_data_in

if TYPE_CHECKING:
    from contracts.activation import ActivationRecord


@dataclass(frozen=True)
class OrderSummary:
    workflow_id: str
    status: str
    card_id: str | None
    issuer_request_id: str | None
    production_status: str | None
    outcome: str | None


async def found(call: Awaitable[object]) -> bool:
    """False when Temporal answers NOT_FOUND (an unknown or closed workflow), True when the call succeeds."""
    try:
        await call
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


class OrderReads:
    """What :class:`starter.api.CardOrders` reads; it needs only the Temporal client."""

    client: Client

    async def _exists(self, workflow_id: str) -> bool:
        return await found(self.client.get_workflow_handle(workflow_id).describe())

    async def order_exists(self, workflow_id: str) -> bool:
        """Whether Temporal knows the order (running or closed)."""
        return await self._exists(workflow_id)

    def handle(self, issuer_id: str, issuer_request_id: str) -> WorkflowHandle[Any, Any]:
        """The order's handle; ids holding card data are refused (InvalidOrder) before Temporal hears them."""
        refuse_card_data_in(issuerId=issuer_id, issuerRequestId=issuer_request_id)
        return self.client.get_workflow_handle(api.workflow_id(issuer_id, issuer_request_id), result_type=OrderResult)

    async def status(self, issuer_id: str, issuer_request_id: str) -> OrderView:
        return await self.handle(issuer_id, issuer_request_id).query(api.VIEW_QUERY, result_type=OrderView)

    async def outcome(self, issuer_id: str, issuer_request_id: str) -> OrderResult:
        """How the order ended, once it did (its result: no query, no replay of its history)."""
        return cast(OrderResult, await self.handle(issuer_id, issuer_request_id).result())

    async def wait(self, issuer_id: str, issuer_request_id: str) -> OrderView:
        """The order's view once it ended: its result only says how (contracts/card_order.py
        ``OrderResult``), the view is read by query, which a closed order still answers (the
        worker replays its history for it: :meth:`outcome` when the outcome is enough)."""
        handle = self.handle(issuer_id, issuer_request_id)
        await handle.result()
        return await handle.query(api.VIEW_QUERY, result_type=OrderView)

    async def wait_for(
        self,
        issuer_id: str,
        issuer_request_id: str,
        predicate: Any,
        *,
        timeout: float = 60.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
        poll: float = 0.2,
    ) -> OrderView:
        """Poll the view until ``predicate(view)`` holds (for demos and tests)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            view = await self.status(issuer_id, issuer_request_id)
            if predicate(view):
                return view
            if loop.time() > deadline:
                raise TimeoutError(f"order {issuer_request_id} did not reach the expected state in {timeout}s")
            await asyncio.sleep(poll)

    async def list(self, query: str | None = None, *, limit: int = 100) -> list[OrderSummary]:
        keys = (sa.CARD_ID, sa.ISSUER_REQUEST_ID, sa.PRODUCTION_STATUS, sa.ORDER_OUTCOME)
        return [
            OrderSummary(
                wf.id,
                (wf.status or WorkflowExecutionStatus.RUNNING).name,
                *(wf.typed_search_attributes.get(key) for key in keys),
            )
            async for wf in self.client.list_workflows(api.orders_query(query), limit=limit)
        ]

    async def group_orders(
        self, group_id: str, *, issuer_id: str | None = None, limit: int = 1000
    ) -> builtins.list[OrderSummary]:
        """The orders of one BULK shipment group (search attribute ``ShipmentGroupId``)."""
        return await self.list(api.group_query(group_id, issuer_id), limit=limit)

    async def replacements(self, issuer_id: str, card_id: str) -> builtins.list[OrderSummary]:
        """The orders that replace or renew ``card_id`` (search attribute ``ReplacesCardId``)."""
        from starter.replacement import replacements_query

        return await self.list(replacements_query(issuer_id, card_id))

    async def activation(self, issuer_id: str, card_id: str) -> ActivationRecord | None:
        """The card's activation (D1's Card Activation call, receiver/activation.py), or None: when
        and how, from the activation record's search attributes (its payload is the receiver's)."""
        from contracts import activation as activation_api
        from contracts.activation import ActivationFlag, ActivationRecord

        handle = self.client.get_workflow_handle(activation_api.workflow_id(issuer_id, card_id))
        try:
            described = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        attrs = described.typed_search_attributes
        flags, at = attrs.get(sa.ACTIVATION), attrs.get(sa.ACTIVATED_AT)
        if not flags or at is None:
            return None
        return ActivationRecord(
            issuer_id=issuer_id, card_id=card_id, activated_at=at.isoformat(), flag=ActivationFlag(flags[0])
        )

    def tracking_handle(self, issuer_id: str, card_id: str, tracking_type: str) -> WorkflowHandle[Any, Any]:
        refuse_card_data_in(issuerId=issuer_id, cardId=card_id)
        return self.client.get_workflow_handle(
            tracking_api.workflow_id(issuer_id, card_id, tracking_type), result_type=TrackingResult
        )

    async def tracking_status(self, issuer_id: str, card_id: str, tracking_type: str) -> TrackingView:
        handle = self.tracking_handle(issuer_id, card_id, tracking_type)
        return await handle.query(tracking_api.VIEW_QUERY, result_type=TrackingView)
