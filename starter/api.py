"""The Python API issuer services use to order cards and follow them.

``submit`` is idempotent: the workflow id is the idempotency key (issuerId +
issuerRequestId), so a retried or concurrent submit of the same order returns the
existing order and never creates a second workflow or D1 submission. A *different*
issuerRequestId for a card that already has an open order is refused.
"""

from __future__ import annotations

import asyncio
import builtins
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from d1.order import Address, CardOrder, as_channel_order
from observability.tracing import order_submission_span
from settings import OrderTimingSettings, TemporalSettings
from starter.validation import InvalidOrder, check_order, mask_pan, validate_address
from temporal_client import connect
from workflows import search_attributes as sa
from workflows.card_order import (
    ACCELERATE_AND_REDIRECT_UPDATE,
    ACCELERATE_UPDATE,
    CANCEL_UPDATE,
    REDIRECT_UPDATE,
    VIEW_QUERY,
    CardOrderWorkflow,
)
from workflows.messages import (
    CardOrderInput,
    ChangeRequest,
    OrderRef,
    OrderTiming,
    OrderView,
    workflow_id_for,
)
from workflows.order_state import ChangeRecord


class OrderRefused(Exception):
    """The order conflicts with an open order for the same card."""


class ChangeRejected(Exception):
    """A pull & change was refused before D1 was called (finished or shipped order, a change
    already pending, ...) or D1 refused the request itself; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class SubmittedOrder:
    workflow_id: str
    created: bool
    # Warnings of the validation ("path: reason"): deprecated members, unknown ones let through.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrderSummary:
    workflow_id: str
    status: str
    card_id: str | None
    issuer_request_id: str | None
    production_status: str | None
    outcome: str | None


def order_ref(order: CardOrder) -> OrderRef:
    shipment = order.shipment
    return OrderRef(
        issuer_id=order.issuerId,
        card_id=order.cardId,
        issuer_request_id=order.issuerRequestId,
        consumer_id=order.consumerId,
        card_product_id=order.cardProductId,
        masked_pan=mask_pan(order.cardData.pan),
        shipment_type=shipment.type if shipment else None,
        group_id=shipment.groupId if shipment else None,
        bulk_order_id=shipment.orderId if shipment else None,
        distribution_channel=order.distributionChannel,
    )


def timing_from_settings(settings: OrderTimingSettings | None = None) -> OrderTiming:
    s = settings or OrderTimingSettings()
    return OrderTiming(
        reconcile_after=s.reconcile_after, quiet_after_shipped=s.quiet_after_shipped, close_grace=s.close_grace
    )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class CardOrders:
    def __init__(self, client: Client, *, task_queue: str, timing: OrderTiming | None = None) -> None:
        self.client = client
        self.task_queue = task_queue
        self.timing = timing or timing_from_settings()

    @classmethod
    async def connect(cls, settings: TemporalSettings | None = None) -> CardOrders:
        settings = settings or TemporalSettings()
        return cls(await connect(settings), task_queue=settings.task_queue)

    # ------------------------------------------------------------------ submit

    async def submit(self, order: CardOrder | dict[str, Any]) -> SubmittedOrder:
        """Validate (a dict: every rule, raising InvalidOrder with every problem) and start the
        order, or return the existing one. A CardOrder is taken as already validated."""
        warnings: tuple[str, ...] = ()
        if not isinstance(order, CardOrder):
            check = check_order(order)
            if check.order is None:
                raise InvalidOrder(check.errors, check.warnings)
            order, warnings = check.order, tuple(map(str, check.warnings))
        submitted = await self._submit_traced(order)
        return SubmittedOrder(submitted.workflow_id, submitted.created, warnings) if warnings else submitted

    async def _submit_traced(self, order: CardOrder) -> SubmittedOrder:
        wid = workflow_id_for(order.issuerId, order.issuerRequestId)
        # The root of this order's trace (observability/tracing.py); ids only.
        with order_submission_span(
            issuer_id=order.issuerId, card_id=order.cardId, issuer_request_id=order.issuerRequestId, workflow_id=wid
        ) as span:
            submitted = await self._submit(order, wid)
            span.set_attribute("d1.order.created", submitted.created)
            return submitted

    async def _submit(self, order: CardOrder, wid: str) -> SubmittedOrder:
        if await self._exists(wid):
            return SubmittedOrder(wid, created=False)
        await self._refuse_if_card_busy(order)
        ref = order_ref(order)
        attrs = TypedSearchAttributes(
            [
                SearchAttributePair(sa.ISSUER_ID, order.issuerId),
                SearchAttributePair(sa.CARD_ID, order.cardId),
                SearchAttributePair(sa.ISSUER_REQUEST_ID, order.issuerRequestId),
                *([SearchAttributePair(sa.CONSUMER_ID, order.consumerId)] if order.consumerId else []),
                *([SearchAttributePair(sa.GROUP_ID, ref.group_id)] if ref.group_id else []),
            ]
        )
        try:
            await self.client.start_workflow(
                CardOrderWorkflow.run,
                CardOrderInput(ref=ref, timing=self.timing, order=as_channel_order(order)),
                id=wid,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=attrs,
                static_summary=f"Card {order.cardId} · request {order.issuerRequestId}",
                static_details=f"Issuer {order.issuerId}, product {order.cardProductId}, "
                f"channel {order.distributionChannel}, PAN {ref.masked_pan}",
            )
        except WorkflowAlreadyStartedError:
            # A concurrent or earlier submit of the same order won: that order is the answer.
            return SubmittedOrder(wid, created=False)
        return SubmittedOrder(wid, created=True)

    async def _exists(self, workflow_id: str) -> bool:
        try:
            await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def _refuse_if_card_busy(self, order: CardOrder) -> None:
        query = (
            f'IssuerId = "{_quote(order.issuerId)}" AND CardId = "{_quote(order.cardId)}" '
            f'AND ExecutionStatus = "Running"'
        )
        async for wf in self.client.list_workflows(query, limit=5):
            other = wf.typed_search_attributes.get(sa.ISSUER_REQUEST_ID)
            if other != order.issuerRequestId:
                raise OrderRefused(
                    f"card {order.cardId} already has an open order (issuerRequestId {other}, "
                    f"workflow {wf.id}); cancel it or wait for it to finish before ordering again"
                )

    # ------------------------------------------------------------------ follow

    def handle(self, issuer_id: str, issuer_request_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(
            workflow_id_for(issuer_id, issuer_request_id), result_type=OrderView
        )

    async def status(self, issuer_id: str, issuer_request_id: str) -> OrderView:
        view: OrderView = await self.handle(issuer_id, issuer_request_id).query(VIEW_QUERY, result_type=OrderView)
        return view

    async def wait(self, issuer_id: str, issuer_request_id: str) -> OrderView:
        result: OrderView = await self.handle(issuer_id, issuer_request_id).result()
        return result

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
        base = 'WorkflowType = "CardOrderWorkflow"'
        full = f"{base} AND ({query})" if query else base
        out: list[OrderSummary] = []
        async for wf in self.client.list_workflows(full, limit=limit):
            attrs = wf.typed_search_attributes
            out.append(
                OrderSummary(
                    workflow_id=wf.id,
                    status=(wf.status or WorkflowExecutionStatus.RUNNING).name,
                    card_id=attrs.get(sa.CARD_ID),
                    issuer_request_id=attrs.get(sa.ISSUER_REQUEST_ID),
                    production_status=attrs.get(sa.PRODUCTION_STATUS),
                    outcome=attrs.get(sa.ORDER_OUTCOME),
                )
            )
        return out

    async def group_orders(
        self, group_id: str, *, issuer_id: str | None = None, limit: int = 1000
    ) -> builtins.list[OrderSummary]:
        """The orders of one BULK shipment group (search attribute ``ShipmentGroupId``)."""
        query = f'ShipmentGroupId = "{_quote(group_id)}"'
        if issuer_id:
            query += f' AND IssuerId = "{_quote(issuer_id)}"'
        return await self.list(query, limit=limit)

    # ---------------------------------------------------------- pull & change

    async def cancel(self, issuer_id: str, issuer_request_id: str, *, note: str | None = None) -> ChangeRecord:
        """Cancel an order not yet shipped. Returns once D1 took the request; the outcome
        (ACCEPTED / REFUSED) then shows in :meth:`status` (``state.changes``); an accepted
        cancel ends the order as CANCELED (CARD_PROD_CANCELED)."""
        return await self._change(CANCEL_UPDATE, issuer_id, issuer_request_id, ChangeRequest(note=note))

    async def accelerate(self, issuer_id: str, issuer_request_id: str, *, note: str | None = None) -> ChangeRecord:
        """Produce as soon as possible and ship with an express carrier (before shipment)."""
        return await self._change(ACCELERATE_UPDATE, issuer_id, issuer_request_id, ChangeRequest(note=note))

    async def redirect(
        self,
        issuer_id: str,
        issuer_request_id: str,
        new_delivery_address: Address | dict[str, Any],
        *,
        note: str | None = None,
    ) -> ChangeRecord:
        """Ship to a new delivery address (before personalization prints the carrier).
        An invalid address raises InvalidOrder with every problem (``$.newDeliveryAddress...``)."""
        address = self._address(new_delivery_address)
        request = ChangeRequest(new_delivery_address=address, note=note)
        return await self._change(REDIRECT_UPDATE, issuer_id, issuer_request_id, request)

    async def accelerate_and_redirect(
        self,
        issuer_id: str,
        issuer_request_id: str,
        new_delivery_address: Address | dict[str, Any],
        *,
        note: str | None = None,
    ) -> ChangeRecord:
        address = self._address(new_delivery_address)
        request = ChangeRequest(new_delivery_address=address, note=note)
        return await self._change(ACCELERATE_AND_REDIRECT_UPDATE, issuer_id, issuer_request_id, request)

    @staticmethod
    def _address(value: Address | dict[str, Any]) -> Address:
        raw = value.model_dump(mode="json", exclude_none=True) if isinstance(value, Address) else value
        return validate_address(raw)

    async def _change(
        self, update: str, issuer_id: str, issuer_request_id: str, request: ChangeRequest
    ) -> ChangeRecord:
        handle = self.handle(issuer_id, issuer_request_id)
        try:
            record: ChangeRecord = await handle.execute_update(update, request, result_type=ChangeRecord)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            raise ChangeRejected(cause.message if isinstance(cause, ApplicationError) else str(cause)) from None
        except RPCError as err:
            # Updating a closed workflow is NOT_FOUND too: tell "finished" from "unknown".
            if err.status == RPCStatusCode.NOT_FOUND and await self._exists(handle.id):
                raise ChangeRejected("the order is already finished; pull & change only applies to open orders") \
                    from None
            raise
        return record
