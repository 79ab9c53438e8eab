"""The Python API issuer services use to order cards and follow them; ``submit`` is idempotent
(the workflow id is the key, a second open order for a card is refused: docs/architecture.md)."""

from __future__ import annotations

import asyncio
import builtins
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from contracts import card_order as api
from contracts import card_tracking as tracking_api
from contracts import search_attributes as sa
from contracts.card_order import (
    ChangeDecision,
    ChangeKind,
    ChangeRecord,
    ChangeRequest,
    OrderResult,
    OrderTiming,
    OrderView,
)
from contracts.card_tracking import TrackingView
from d1.order import Address, CardOrder
from d1.validation import InvalidOrder, UnknownFields
from observability.tracing import order_submission_span
from security.sealing import EDGE
from settings import OrderTimingSettings, TemporalSettings
from starter.d1_batches import BatchLimits
from starter.edge import OrderEdge, PreparedOrder, PreparedTracking, refuse_card_data_in
from starter.same_order import ForeignStart, ensure_same_order
from temporal_client import connect

if TYPE_CHECKING:
    from contracts.activation import ActivationRecord
    from starter.replacement import Replacement
    from starter.start_many import Started

AddressLike = Address | Mapping[str, Any]
log = logging.getLogger("starter")

__all__ = [
    "CardOrders",
    "ChangeRejected",
    "ForeignStart",
    "InvalidOrder",
    "OrderRefused",
    "OrderSummary",
    "SubmittedOrder",
]


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


def timing_from_settings() -> OrderTiming:
    return OrderTiming(**OrderTimingSettings().model_dump())


class CardOrders:
    """``edge`` validates and encrypts orders (starter/edge.py); by default from the settings."""

    def __init__(
        self, client: Client, *, task_queue: str, timing: OrderTiming | None = None, edge: OrderEdge | None = None
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.timing = timing or timing_from_settings()
        self._edge = edge

    @functools.cached_property
    def edge(self) -> OrderEdge:
        edge = self._edge or OrderEdge.from_settings()
        # The program's choice is copied into each order this process starts (starter/edge.py).
        log.info("%s", edge.program.four_eyes_summary())
        return edge

    @classmethod
    async def connect(
        cls, settings: TemporalSettings | None = None, *, edge: OrderEdge | None = None, sealer: str | None = EDGE
    ) -> CardOrders:
        """``sealer``: who the messages are sealed as (temporal_client.codec_from_settings): the
        issuer edge by default; ``"operator"`` for an operator's changes; None to only read."""
        settings = settings or TemporalSettings()
        return cls(await connect(settings, sealer=sealer), task_queue=settings.task_queue, edge=edge)

    async def submit(
        self, order: CardOrder | Mapping[str, Any], *, unknown_fields: UnknownFields | None = None
    ) -> SubmittedOrder:
        """Validate (every rule, raising InvalidOrder with every problem), encrypt the card
        data for D1 and start the order, or return the existing one. Clear card data does
        not leave this call: Temporal receives the JWE and the masked PAN only."""
        return await self.submit_prepared(self.edge.prepare(order, timing=self.timing, unknown_fields=unknown_fields))

    async def submit_prepared(self, prepared: PreparedOrder) -> SubmittedOrder:
        """Start an order the edge already prepared (batches prepare every line first)."""
        ref = prepared.ref
        # The root of this order's trace (observability/tracing.py); ids only.
        with order_submission_span(
            issuer_id=ref.issuer_id,
            card_id=ref.card_id,
            issuer_request_id=ref.issuer_request_id,
            workflow_id=prepared.workflow_id,
        ) as span:
            submitted = await self._start(prepared)
            span.set_attribute("d1.order.created", submitted.created)
        return replace(submitted, warnings=tuple(map(str, prepared.warnings)))

    async def start_many(
        self,
        orders: Sequence[CardOrder | Mapping[str, Any] | PreparedOrder],
        *,
        d1_batches: BatchLimits | bool = False,
        concurrency: int = 32,
        on_result: Callable[[Started], None] | None = None,
    ) -> builtins.list[Started]:
        """Start many orders (starter/start_many.py), each with its own D1 call or, with
        ``d1_batches`` (True: the limits of ``D1_BATCH_*`` and the program), through D1's
        batch API; ``on_result`` hears each order's result as it settles."""
        from starter.start_many import start_many  # it builds on this class: imported when used

        limits = d1_batches if isinstance(d1_batches, BatchLimits) else None
        if d1_batches is True:
            limits = BatchLimits.from_settings(self.edge.program.interface.batchMaxCards)
        return await start_many(self, orders, d1_batches=limits, concurrency=concurrency, on_result=on_result)

    async def _start(self, prepared: PreparedOrder) -> SubmittedOrder:
        """Start the order; an id already taken is the answer only when its run is this order
        (a retry): anything else there is a foreign start (:class:`ForeignStart`)."""
        if await self._exists(prepared.workflow_id):
            await self._ensure_same_order(prepared)
            return SubmittedOrder(prepared.workflow_id, created=False)
        await self._refuse_if_card_busy(prepared)
        submitted = await self._start_once(api.WORKFLOW_TYPE, prepared, reuse=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        if not submitted.created:  # another start won the race: it must be this order too
            await self._ensure_same_order(prepared)
        return submitted

    async def _ensure_same_order(self, prepared: PreparedOrder) -> None:
        await ensure_same_order(self.client, prepared.workflow_id, prepared.ref, prepared.d1_body_digest)

    async def _start_once(
        self, workflow_type: str, prepared: PreparedOrder | PreparedTracking, *, reuse: WorkflowIDReusePolicy
    ) -> SubmittedOrder:
        """A concurrent or earlier start under that id (per ``reuse``) is the answer."""
        try:
            await self.client.start_workflow(
                workflow_type,
                prepared.input,
                id=prepared.workflow_id,
                task_queue=self.task_queue,
                id_reuse_policy=reuse,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=prepared.search_attributes,
                static_summary=prepared.summary,
                static_details=prepared.details,
                memo=prepared.memo if isinstance(prepared, PreparedOrder) else None,
            )
        except WorkflowAlreadyStartedError:
            return SubmittedOrder(prepared.workflow_id, created=False)
        return SubmittedOrder(prepared.workflow_id, created=True)

    async def _exists(self, workflow_id: str) -> bool:
        return await found(self.client.get_workflow_handle(workflow_id).describe())

    async def order_exists(self, workflow_id: str) -> bool:
        """Whether Temporal knows the order (running or closed)."""
        return await self._exists(workflow_id)

    # The card's life after its order (starter/replacement.py): each returns the new order.

    async def replace(
        self,
        issuer_id: str,
        card_id: str,
        reason: str,
        *,
        new_card_id: str,
        card_data: Mapping[str, Any],
        changes: Mapping[str, Any] | None = None,
        issuer_request_id: str | None = None,
        track_data: Mapping[str, Any] | None = None,
    ) -> SubmittedOrder:
        """Order ``new_card_id`` (issuance REPLACEMENT) in place of ``card_id`` (``reason``: LOST,
        STOLEN, DAMAGED, EXPIRED, OTHER), reusing its last order's members unless ``changes`` says
        otherwise. OrderRefused: the old card's order is open and the program refuses."""
        from starter.replacement import Reason, Replacement

        return await self._replace(
            Replacement(
                issuer_id=issuer_id,
                card_id=card_id,
                reason=Reason(reason.upper()),
                new_card_id=new_card_id,
                card_data=card_data,
                track_data=track_data,
                issuer_request_id=issuer_request_id,
                changes=changes,
            )
        )

    async def renew(
        self,
        issuer_id: str,
        card_id: str,
        *,
        new_card_id: str,
        card_data: Mapping[str, Any],
        changes: Mapping[str, Any] | None = None,
        issuer_request_id: str | None = None,
    ) -> SubmittedOrder:
        """Order the renewal of ``card_id`` (issuance RENEWAL, D1's own service level and carrier)."""
        return await self.replace(
            issuer_id,
            card_id,
            "RENEWAL",
            new_card_id=new_card_id,
            card_data=card_data,
            changes=changes,
            issuer_request_id=issuer_request_id,
        )

    async def reship(
        self,
        issuer_id: str,
        card_id: str,
        new_delivery_address: AddressLike,
        *,
        new_card_id: str,
        card_data: Mapping[str, Any],
        issuer_request_id: str | None = None,
    ) -> SubmittedOrder:
        """Re-ship a card that came back (RETURNED) or was lost (LOST_IN_TRANSIT) to a corrected
        address, in one call: a replacement whose address is checked as a redirect's is."""
        from starter.replacement import Reason, Replacement, Replacer

        address = self.edge.address(new_delivery_address)
        previous_outcome = await self._last_outcome(issuer_id, card_id)
        reason = Reason.LOST_IN_TRANSIT if previous_outcome == "LOST_IN_TRANSIT" else Reason.RETURNED
        replacement = Replacement(
            issuer_id=issuer_id,
            card_id=card_id,
            reason=reason,
            new_card_id=new_card_id,
            card_data=card_data,
            issuer_request_id=issuer_request_id,
            changes={"shipment": {"deliveryAddress": address.model_dump(mode="json", exclude_none=True)}},
        )
        return await Replacer(self).start(replacement, reship_only=True)

    async def renew_many(self, renewals: Sequence[Replacement], *, d1_batches: bool = True) -> builtins.list[Started]:
        """A renewal campaign: every renewal through D1's batch API (starter/replacement.py)."""
        from starter.replacement import Replacer

        return await Replacer(self).start_many(renewals, d1_batches=d1_batches)

    async def _replace(self, replacement: Replacement) -> SubmittedOrder:
        from starter.replacement import Replacer

        return await Replacer(self).start(replacement)

    async def _last_outcome(self, issuer_id: str, card_id: str) -> str | None:
        from starter.replacement import previous_order

        return (await previous_order(self.client, issuer_id, card_id)).outcome

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

    async def _refuse_if_card_busy(self, prepared: PreparedOrder) -> None:
        ref = prepared.ref
        async for wf in self.client.list_workflows(api.open_orders_of_card_query(ref.issuer_id, ref.card_id), limit=5):
            other = wf.typed_search_attributes.get(sa.ISSUER_REQUEST_ID)
            if other != ref.issuer_request_id:
                raise OrderRefused(
                    f"card {ref.card_id} already has an open order (issuerRequestId {other}, "
                    f"workflow {wf.id}); cancel it or wait for it to finish before ordering again"
                )

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

    async def track(
        self, issuer_id: str, card_id: str, tracking_type: str, *, details: Mapping[str, Any] | None = None
    ) -> SubmittedOrder:
        """Ask D1's tracking hub to follow a card Thales did not personalize (PRODUCTION,
        SHIPMENT or RETURN; ``details`` e.g. ``{"shipment": {"carrier": "dhl",
        "trackingNumber": "..."}}``). Asking again for the same tracking returns the same one
        while it runs; once it ended, a new one starts."""
        prepared = self.edge.prepare_tracking(issuer_id, card_id, tracking_type, details=details, timing=self.timing)
        # A tracking that ended may be asked for again; one that runs is the answer.
        return await self._start_once(tracking_api.WORKFLOW_TYPE, prepared, reuse=WorkflowIDReusePolicy.ALLOW_DUPLICATE)

    def tracking_handle(self, issuer_id: str, card_id: str, tracking_type: str) -> WorkflowHandle[Any, Any]:
        refuse_card_data_in(issuerId=issuer_id, cardId=card_id)
        return self.client.get_workflow_handle(
            tracking_api.workflow_id(issuer_id, card_id, tracking_type), result_type=TrackingView
        )

    async def tracking_status(self, issuer_id: str, card_id: str, tracking_type: str) -> TrackingView:
        handle = self.tracking_handle(issuer_id, card_id, tracking_type)
        return await handle.query(tracking_api.VIEW_QUERY, result_type=TrackingView)

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


async def found(call: Awaitable[object]) -> bool:
    """False when Temporal answers NOT_FOUND (an unknown or closed workflow), True when the call succeeds."""
    try:
        await call
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
