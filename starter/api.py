"""The Python API issuer services use to order cards and follow them; ``submit`` is idempotent
(the workflow id is the key, a second open order for a card is refused: docs/architecture.md)."""

from __future__ import annotations

import builtins
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from contracts import card_order as api
from contracts import card_tracking as tracking_api
from contracts import search_attributes as sa
from contracts.card_order import OrderTiming
from d1.order import CardOrder
from d1.validation import InvalidOrder, UnknownFields
from observability.tracing import order_submission_span
from security.sealing import EDGE
from settings import OrderTimingSettings, TemporalSettings
from starter.changes import AddressLike, OrderChanges
from starter.d1_batches import BatchLimits
from starter.edge import OrderEdge, PreparedOrder, PreparedTracking
from starter.errors import ChangeRejected, OrderRefused
from starter.reads import OrderSummary
from starter.same_order import ForeignStart, ensure_same_order
from temporal_client import connect

if TYPE_CHECKING:
    from starter.replacement import Replacement
    from starter.start_many import Started

log = logging.getLogger("starter")

# The documented Python API (README.md); the reads and changes of CardOrders live in
# starter/reads.py and starter/changes.py, what they raise in starter/errors.py.
__all__ = [
    "CardOrders",
    "ChangeRejected",
    "ForeignStart",
    "InvalidOrder",
    "OrderRefused",
    "OrderSummary",
    "SubmittedOrder",
]


@dataclass(frozen=True)
class SubmittedOrder:
    workflow_id: str
    created: bool
    # Warnings of the validation ("path: reason"): deprecated members, unknown ones let through.
    warnings: tuple[str, ...] = ()


def timing_from_settings() -> OrderTiming:
    return OrderTiming(**OrderTimingSettings().model_dump())


class CardOrders(OrderChanges):
    """``edge`` validates and encrypts orders (starter/edge.py); by default from the settings. Reading
    orders (starter/reads.py) and changing them (starter/changes.py) come with it."""

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
        # The common case, a new order, costs the visibility read and the start: the order's own
        # id is read only when one of them says it may be there already.
        try:
            await self._refuse_if_card_busy(prepared)  # a retry of the open order is not "busy"
        except OrderRefused:
            if not await self._exists(prepared.workflow_id):
                raise
            await self._ensure_same_order(prepared)  # a retry of an earlier order of this card
            return SubmittedOrder(prepared.workflow_id, created=False)
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

    async def _refuse_if_card_busy(self, prepared: PreparedOrder) -> None:
        ref = prepared.ref
        async for wf in self.client.list_workflows(api.open_orders_of_card_query(ref.issuer_id, ref.card_id), limit=5):
            other = wf.typed_search_attributes.get(sa.ISSUER_REQUEST_ID)
            if other != ref.issuer_request_id:
                raise OrderRefused(
                    f"card {ref.card_id} already has an open order (issuerRequestId {other}, "
                    f"workflow {wf.id}); cancel it or wait for it to finish before ordering again"
                )

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
