"""Pull & change on an open order (cancel, accelerate, redirect) and four eyes on a new delivery
address (approve, reject): the updates :class:`starter.api.CardOrders` sends to the order's workflow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from contracts import card_order as api
from contracts.card_order import ChangeDecision, ChangeKind, ChangeRecord, ChangeRequest
from d1.order import Address
from starter.edge import OrderEdge, refuse_card_data_in
from starter.errors import ChangeRejected
from starter.reads import OrderReads

AddressLike = Address | Mapping[str, Any]


class OrderChanges(OrderReads):
    """The changes of :class:`starter.api.CardOrders`."""

    @property
    def edge(self) -> OrderEdge:
        """Checks a new delivery address: CardOrders' edge (from the settings on first use)."""
        raise NotImplementedError

    async def cancel(self, issuer_id: str, issuer_request_id: str, *, note: str | None = None) -> ChangeRecord:
        """Cancel an order not yet shipped. Returns once D1 took the request; the outcome
        (ACCEPTED / REFUSED) then shows in :meth:`status` (``state.changes``); an accepted
        cancel ends the order as CANCELED (CARD_PROD_CANCELED)."""
        return await self._change(api.CANCEL_UPDATE, issuer_id, issuer_request_id, note)

    async def accelerate(self, issuer_id: str, issuer_request_id: str, *, note: str | None = None) -> ChangeRecord:
        """Produce as soon as possible and ship with an express carrier (before shipment)."""
        return await self._change(api.ACCELERATE_UPDATE, issuer_id, issuer_request_id, note)

    async def redirect(
        self, issuer_id: str, issuer_request_id: str, new_delivery_address: AddressLike, *, note: str | None = None
    ) -> ChangeRecord:
        """Ship to a new delivery address (before personalization prints the carrier).
        An invalid address raises InvalidOrder with every problem (``$.newDeliveryAddress...``).
        Under four eyes (the program's default) the change comes back ``AWAITING_APPROVAL``: D1
        is asked once another operator calls :meth:`approve_change`."""
        return await self._change(api.REDIRECT_UPDATE, issuer_id, issuer_request_id, note, new_delivery_address)

    async def accelerate_and_redirect(
        self, issuer_id: str, issuer_request_id: str, new_delivery_address: AddressLike, *, note: str | None = None
    ) -> ChangeRecord:
        update = api.ACCELERATE_AND_REDIRECT_UPDATE
        return await self._change(update, issuer_id, issuer_request_id, note, new_delivery_address)

    async def _change(
        self, update: str, issuer_id: str, issuer_request_id: str, note: str | None, address: AddressLike | None = None
    ) -> ChangeRecord:
        # The note is kept in the order's view and history: no card data in it, nor in the ids.
        refuse_card_data_in(issuerId=issuer_id, issuerRequestId=issuer_request_id, note=note)
        new_address = self.edge.address(address) if address is not None else None
        request = ChangeRequest(kind=cast(ChangeKind, update), new_delivery_address=new_address, note=note)
        return await self._update(update, issuer_id, issuer_request_id, request)

    async def approve_change(
        self, issuer_id: str, issuer_request_id: str, change_id: str, *, note: str | None = None
    ) -> ChangeRecord:
        """Four eyes on a new delivery address: approve a redirect (or accelerate-and-redirect)
        another operator asked for; D1 is asked now. The approver is whoever seals this call
        (the operator's own key), never the one who asked: ``ChangeRejected`` then, as for an
        expired, rejected or unknown change or an order that moved on (shipped, canceled)."""
        decision = ChangeDecision(kind="approve_change", change_id=change_id, note=note)
        return await self._update(api.APPROVE_CHANGE_UPDATE, issuer_id, issuer_request_id, decision)

    async def reject_change(
        self, issuer_id: str, issuer_request_id: str, change_id: str, *, note: str | None = None
    ) -> ChangeRecord:
        """Reject a change waiting for approval (another operator), or withdraw it (the one who
        asked); D1 is never asked. ``note`` says why (kept in the order's view)."""
        decision = ChangeDecision(kind="reject_change", change_id=change_id, note=note)
        return await self._update(api.REJECT_CHANGE_UPDATE, issuer_id, issuer_request_id, decision)

    async def _update(
        self, update: str, issuer_id: str, issuer_request_id: str, request: ChangeRequest | ChangeDecision
    ) -> ChangeRecord:
        handle = self.handle(issuer_id, issuer_request_id)
        try:
            return await handle.execute_update(update, request, result_type=ChangeRecord)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            raise ChangeRejected(cause.message if isinstance(cause, ApplicationError) else str(cause)) from None
        except RPCError as err:
            # Updating a closed workflow is NOT_FOUND too: tell "finished" from "unknown".
            if err.status == RPCStatusCode.NOT_FOUND and await self._exists(handle.id):
                raise ChangeRejected(
                    "the order is already finished; pull & change only applies to open orders"
                ) from None
            raise
