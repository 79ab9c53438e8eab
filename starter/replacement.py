"""Replace, renew and re-ship a card: a new order for a new card id, built from the card's last order.

The issuer gives the new card's data (a new PAN, expiry: card data only ever comes from the
caller, through the edge) and whatever changes; everything else (product, design, carrier,
packaging, address, payment application) comes from the card's last order. That order's D1
body is in its workflow's start input, sealed by the issuer side's payload codec: the
starter reads it back from the history (:func:`previous_order`), drops the JWE and the
identifiers, and never sees card data in it (``encryptedData`` is for D1 only).

The new order says D1's ``services.issuance`` (REPLACEMENT, RENEWAL) and, where the program
says D1 still reads it (``interface.oldCardIdInOrder``), ``oldCardId``; the link is always
kept on the product's side: ``OrderRef.replaces_card_id`` in the new order's view and the
search attribute ``ReplacesCardId``, which :func:`replacements_query` finds from the old card.
A card whose order is still open is refused or has that order cancelled first, as the
program's ``lifecycle.openOrderOnReplace`` says. A re-shipment (:func:`reship`) is a
replacement of a card that came back (RETURNED) or was lost on its way (LOST_IN_TRANSIT),
to a corrected address checked as a redirect's address is.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.converter import WorkflowSerializationContext

from contracts import card_order as api
from contracts import search_attributes as sa
from contracts.card_order import CardOrderInput, Outcome
from contracts.d1_batch import BatchInput
from contracts.visibility import equals
from d1.validation import InvalidOrder
from starter.edge import PreparedOrder
from starter.errors import ChangeRejected, OrderRefused
from starter.start_many import Started

if TYPE_CHECKING:
    from starter.api import CardOrders, SubmittedOrder


class Reason(StrEnum):
    """Why a card is replaced (Stripe's and Lithic's reasons, and the two of a failed delivery)."""

    LOST = "LOST"
    STOLEN = "STOLEN"
    DAMAGED = "DAMAGED"
    EXPIRED = "EXPIRED"
    OTHER = "OTHER"
    RETURNED = "RETURNED"  # re-shipment of a card returned to the sender
    LOST_IN_TRANSIT = "LOST_IN_TRANSIT"  # re-shipment of a card the carrier lost
    RENEWAL = "RENEWAL"  # renew(): the card expires


# Re-shipped only after these outcomes: the card never reached its holder.
RESHIPPABLE = frozenset({Outcome.RETURNED, Outcome.LOST_IN_TRANSIT})
# Members of the last order's body never reused: identifiers, card data (the JWE, clear
# tracks when a program places them outside it), deprecated inputs set again when due.
NOT_REUSED = ("issuerId", "cardId", "issuerRequestId", "encryptedData", "trackData", "oldCardId", "state")
# Replaced as a whole by a change, never merged member by member (an address is one thing).
WHOLE = frozenset({"deliveryAddress", "individualAddress"})


class NoPreviousOrder(LookupError):
    """The product holds no order for the card (or no longer its history): give every member."""


@dataclass(frozen=True)
class PreviousOrder:
    workflow_id: str
    running: bool
    issuer_request_id: str
    outcome: str | None
    # The last order's D1 body without identifiers nor card data (NOT_REUSED).
    template: dict[str, Any]


def replacements_query(issuer_id: str, card_id: str) -> str:
    """The orders that replace ``card_id`` (the old card's side of the link), for ``CardOrders.list``."""
    return f"{equals('IssuerId', issuer_id)} AND {equals('ReplacesCardId', card_id)}"


def default_request_id(reason: Reason, new_card_id: str) -> str:
    """The same replacement asked twice is one order (the id is the idempotency key)."""
    if reason == Reason.RENEWAL:
        return f"renew-{new_card_id}"
    return f"{'reship' if reason in (Reason.RETURNED, Reason.LOST_IN_TRANSIT) else 'replace'}-{new_card_id}"


async def previous_order(client: Client, issuer_id: str, card_id: str) -> PreviousOrder:
    """The card's last order (the running one first) and its reusable members."""
    best: tuple[bool, Any, str, str | None, str | None] | None = None
    async for wf in client.list_workflows(api.orders_query(api.card_query(card_id, issuer_id)), limit=50):
        running = wf.status == WorkflowExecutionStatus.RUNNING
        attrs = wf.typed_search_attributes
        candidate = (running, wf.start_time, wf.id, attrs.get(sa.ISSUER_REQUEST_ID), attrs.get(sa.ORDER_OUTCOME))
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        raise NoPreviousOrder(f"no order of card {card_id} for issuer {issuer_id}")
    running, _, workflow_id, request_id, outcome = best
    if not running and outcome is None:  # visibility may trail the order's last upsert
        described = await client.get_workflow_handle(workflow_id).describe()
        outcome = described.typed_search_attributes.get(sa.ORDER_OUTCOME)
    body = await _first_body(client, workflow_id, card_id)
    template = {k: copy.deepcopy(v) for k, v in body.items() if k not in NOT_REUSED}
    return PreviousOrder(workflow_id, running, request_id or "", outcome, template)


async def _started(client: Client, workflow_id: str, run_id: str | None = None) -> Any:
    """The started event's attributes of a run (the latest without ``run_id``)."""
    async for event in client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            return event.workflow_execution_started_event_attributes
        break
    raise NoPreviousOrder(f"the history of {workflow_id} is no longer available")


async def _start_input(client: Client, workflow_id: str, model: type[Any]) -> Any:
    """The *first* run's start input, decoded as the workflow reads it. Only that one: the
    issuer side sealed it (a continue-as-new input is the worker's, not for the starter to read)."""
    first_run = (await _started(client, workflow_id)).first_execution_run_id or None
    started = await _started(client, workflow_id, first_run)
    context = WorkflowSerializationContext(namespace=client.namespace, workflow_id=workflow_id)
    (value,) = await client.data_converter.with_context(context).decode(started.input.payloads, [model])
    return value


async def _first_body(client: Client, workflow_id: str, card_id: str) -> dict[str, Any]:
    """The D1 body the order was submitted with: in its first run's input, or in its D1 batch's."""
    inp = await _start_input(client, workflow_id, CardOrderInput)
    if inp.submission is not None:
        return dict(inp.submission.body)
    if inp.batch is not None:
        batch = await _start_input(client, inp.batch.batch_workflow_id, BatchInput)
        for card in batch.cards:
            if card.workflow_id == workflow_id:
                return dict(card.item)
    raise NoPreviousOrder(f"the order {workflow_id} no longer holds what it was submitted with")


def merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` over ``base``: objects merged member by member, addresses and the rest replaced;
    a member set to None is removed."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict) and key not in WHOLE:
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True, kw_only=True)
class Replacement:
    """What the issuer says about one new card."""

    issuer_id: str
    card_id: str  # the card replaced
    reason: Reason
    new_card_id: str
    card_data: Mapping[str, Any]  # the new card's data (clear; encrypted at the edge)
    track_data: Mapping[str, Any] | None = None
    issuer_request_id: str | None = None
    # Members that differ from the last order (e.g. {"services": {"cardCarrier": ...}}).
    changes: Mapping[str, Any] | None = None

    @property
    def issuance(self) -> str:
        return "RENEWAL" if self.reason == Reason.RENEWAL else "REPLACEMENT"

    @property
    def request_id(self) -> str:
        return self.issuer_request_id or default_request_id(self.reason, self.new_card_id)


def new_order(previous: PreviousOrder, replacement: Replacement, *, old_card_id_in_order: bool) -> dict[str, Any]:
    """The new order (clear, as an issuer service submits it): the last order, the changes, the new card."""
    order = merge(previous.template, replacement.changes or {})
    order["services"] = {**order.get("services", {}), "issuance": replacement.issuance}
    order |= {
        "issuerId": replacement.issuer_id,
        "cardId": replacement.new_card_id,
        "issuerRequestId": replacement.request_id,
        "cardData": dict(replacement.card_data),
    }
    if replacement.track_data is not None:
        order["trackData"] = dict(replacement.track_data)
    if old_card_id_in_order:
        order["oldCardId"] = replacement.card_id
    return order


def linked(prepared: PreparedOrder, replacement: Replacement) -> PreparedOrder:
    """The link to the old card: in the order's reference (its view) and its search attributes."""
    ref = prepared.input.ref.model_copy(
        update={"replaces_card_id": replacement.card_id, "replacement_reason": replacement.reason.value}
    )
    attributes = TypedSearchAttributes(
        [*prepared.search_attributes, SearchAttributePair(sa.REPLACES_CARD_ID, [replacement.card_id])]
    )
    return dataclasses.replace(
        prepared,
        input=prepared.input.model_copy(update={"ref": ref}),
        search_attributes=attributes,
        summary=f"{prepared.summary} · {replacement.issuance.lower()} of card {replacement.card_id}",
    )


class Replacer:
    """Replacement, renewal and re-shipment on top of :class:`starter.api.CardOrders`."""

    def __init__(self, orders: CardOrders) -> None:
        self.orders = orders

    async def prepare(
        self, replacement: Replacement, *, reship_only: bool = False
    ) -> tuple[PreparedOrder, PreviousOrder]:
        """The new order, validated and encrypted (InvalidOrder), with its link; NoPreviousOrder."""
        previous = await previous_order(self.orders.client, replacement.issuer_id, replacement.card_id)
        if reship_only and previous.outcome not in RESHIPPABLE:
            raise OrderRefused(
                f"card {replacement.card_id} was not returned nor lost in transit (its last order "
                f"{previous.workflow_id} is {previous.outcome or 'open'}): replace it instead"
            )
        program = self.orders.edge.program
        raw = new_order(previous, replacement, old_card_id_in_order=program.interface.oldCardIdInOrder)
        prepared = self.orders.edge.prepare(raw, timing=self.orders.timing)
        return linked(prepared, replacement), previous

    async def start(self, replacement: Replacement, *, reship_only: bool = False) -> SubmittedOrder:
        prepared, previous = await self.prepare(replacement, reship_only=reship_only)
        if await self.orders.order_exists(prepared.workflow_id):
            return await self.orders.submit_prepared(prepared)  # a repeat: the order it started
        await self.settle_open_order(replacement, previous)
        return await self.orders.submit_prepared(prepared)

    async def settle_open_order(self, replacement: Replacement, previous: PreviousOrder) -> None:
        """The old card's open order: refused, or cancelled first (``lifecycle.openOrderOnReplace``)."""
        if not previous.running:
            return
        policy = self.orders.edge.program.lifecycle.openOrderOnReplace
        if policy == "refuse":
            raise OrderRefused(
                f"card {replacement.card_id} has an open order ({previous.workflow_id}); cancel it first, or let "
                "the program cancel it (lifecycle.openOrderOnReplace: cancel)"
            )
        note = f"{replacement.issuance.lower()} by card {replacement.new_card_id}"
        try:
            await self.orders.cancel(replacement.issuer_id, previous.issuer_request_id, note=note)
        except ChangeRejected as err:
            raise OrderRefused(
                f"card {replacement.card_id} has an open order ({previous.workflow_id}) that cannot be cancelled: "
                f"{err.reason}"
            ) from None

    async def start_many(self, replacements: Sequence[Replacement], *, d1_batches: bool = True) -> list[Started]:
        """A campaign (renewals from a file): every new order prepared, then started through D1's
        batch API; a line that cannot be prepared or whose card has an open order is refused."""
        ready: list[tuple[int, PreparedOrder]] = []
        refused: list[Started] = []
        for index, replacement in enumerate(replacements):
            try:
                prepared, previous = await self.prepare(replacement)
                if previous.running and not await self.orders.order_exists(prepared.workflow_id):
                    await self.settle_open_order(replacement, previous)
            except (InvalidOrder, NoPreviousOrder, OrderRefused) as err:
                refused.append(Started(index, refused=_why(err)))
                continue
            ready.append((index, prepared))
        started = await self.orders.start_many([p for _, p in ready], d1_batches=d1_batches) if ready else []
        renumbered = [dataclasses.replace(s, index=ready[s.index][0]) for s in started]
        return sorted([*renumbered, *refused], key=lambda s: s.index)


def _why(err: Exception) -> str:
    if isinstance(err, InvalidOrder):
        return "; ".join(f"{e.path}: {e.reason}" for e in err.errors)
    return str(err)
