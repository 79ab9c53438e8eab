"""Is the run that holds an order's workflow id this very order? (issue 19, "Nobody can squat
an order"; docs/security.md, "Squatted workflow ids").

Whoever can start workflows can start ``card-order:<issuer>:<requestId>`` first. Before a
start that finds its id taken answers "already started", the starter opens the input of the
id's first run (the first event of its history, decoded with the starter's own data converter
and the workflow's serialization context) and compares it with the order it was asked to
start: identifiers, and D1's body without ``encryptedData`` (the JWE differs on every
encryption, the body around it does not). An input it cannot open, of another workflow
type, or describing another order is a foreign start: :class:`ForeignStart`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.converter import WorkflowSerializationContext

from contracts import card_order as api
from contracts import d1_batch as batch_api
from contracts.card_order import CardOrderInput, OrderRef
from contracts.d1_batch import BatchInput

ENCRYPTED_MEMBER = "encryptedData"
# Payload metadata a role-keyed codec sets on decoding (who sealed it), and the edge's role.
SEALED_BY = "sealed-by"
EDGE_SEALER = b"edge"


class ForeignStart(Exception):
    """The workflow id is held by a run that is not this order (or batch): nothing was started,
    and "already started" would be a lie. An operator should look at that run."""

    def __init__(self, workflow_id: str, why: str) -> None:
        self.workflow_id = workflow_id
        self.why = why
        super().__init__(
            f"workflow id {workflow_id} is taken by a run that is not this order ({why}); nothing was started: "
            "terminate that run after checking who started it"
        )


def body_digest(body: Mapping[str, Any]) -> str:
    """SHA-256 of D1's body without its JWE, members in a stable order."""
    clear = {k: v for k, v in body.items() if k != ENCRYPTED_MEMBER}
    return hashlib.sha256(json.dumps(clear, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _identity(ref: OrderRef) -> tuple[str | None, ...]:
    # Not the masked PAN: how it is masked may change between versions, the order does not.
    return (ref.issuer_id, ref.card_id, ref.issuer_request_id, ref.consumer_id, ref.card_product_id)


async def _first_event(client: Client, workflow_id: str) -> HistoryEvent | None:
    """The first event of the id's first run (a continued run starts with the worker's input)."""
    description = await client.get_workflow_handle(workflow_id).describe()
    first_run = description.raw_description.workflow_execution_info.first_run_id or description.run_id
    handle = client.get_workflow_handle(workflow_id, run_id=first_run)
    async for event in handle.fetch_history_events(page_size=1):
        return event
    return None


async def _start_input(client: Client, workflow_id: str, workflow_type: str, type_hint: type) -> Any:
    """The decoded start input of the id's first run, or why it is foreign (:class:`ForeignStart`)."""
    event = await _first_event(client, workflow_id)
    started = event.workflow_execution_started_event_attributes if event is not None else None
    if started is None or started.workflow_type.name != workflow_type:
        raise ForeignStart(workflow_id, "another workflow type")
    payloads = list(started.input.payloads)
    if len(payloads) != 1:
        raise ForeignStart(workflow_id, f"{len(payloads)} start arguments instead of one")
    converter = client.data_converter.with_context(
        WorkflowSerializationContext(namespace=client.namespace, workflow_id=workflow_id)
    )
    try:
        opened = await converter.payload_codec.decode(payloads) if converter.payload_codec else payloads
        sealer = opened[0].metadata.get(SEALED_BY)
        [value] = converter.payload_converter.from_payloads(opened, [type_hint])
    except Exception:  # not sealed with our keys, or not the shape of our input: not ours
        raise ForeignStart(workflow_id, "its start input cannot be opened with this service's keys") from None
    # A codec that names the sealer (one key per role): only the issuer edge starts orders.
    if sealer is not None and sealer != EDGE_SEALER:
        raise ForeignStart(workflow_id, "its start input was not sealed by the issuer edge")
    return value


async def ensure_same_order(client: Client, workflow_id: str, ref: OrderRef, d1_body_digest: str | None) -> None:
    """Return when the run holding ``workflow_id`` was started for this order (a retry), raise
    :class:`ForeignStart` otherwise: the same identifiers and, when both sides carry one, the
    same D1 body (:func:`body_digest`; an order waiting for a D1 batch carries none itself)."""
    existing: CardOrderInput = await _start_input(client, workflow_id, api.WORKFLOW_TYPE, CardOrderInput)
    if _identity(existing.ref) != _identity(ref):
        raise ForeignStart(workflow_id, "its start input names another order")
    theirs = existing.submission
    if d1_body_digest is not None and theirs is not None and body_digest(theirs.body) != d1_body_digest:
        raise ForeignStart(workflow_id, "its start input carries another D1 body")


async def ensure_same_batch(client: Client, workflow_id: str, expected: BatchInput) -> None:
    """The D1 batch workflow holding ``workflow_id`` must call D1 for cards of this batch, with
    the same bodies: a card it names must be one of ours, with the same item. (A card of ours
    it lacks was refused by an earlier run.)"""
    existing: BatchInput = await _start_input(client, workflow_id, batch_api.WORKFLOW_TYPE, BatchInput)
    ours = {card.workflow_id: card for card in expected.cards}
    if existing.issuer_id != expected.issuer_id:
        raise ForeignStart(workflow_id, "its start input names another issuer")
    for card in existing.cards:
        mine = ours.get(card.workflow_id)
        if mine is None or (mine.card_id, mine.issuer_request_id) != (card.card_id, card.issuer_request_id):
            raise ForeignStart(workflow_id, "its start input names cards not in this batch")
        if body_digest(mine.item) != body_digest(card.item):
            raise ForeignStart(workflow_id, "its start input carries another D1 body")
