"""Clients that seal as the product's senders do (docs/security.md, "Messages bound to their order").

In production each process seals with its role's key: the edge starts orders, the receiver
signals D1's notifications, an operator asks for changes, the worker continues as new and
answers batches. A test drives all of them from one client, so its codec seals each message
as the role that sends that kind of message in production (:data:`SENDER_OF_KIND`); a test of
the role rules asks for one role explicitly with :func:`as_role`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import PayloadCodec, SerializationContext, WithSerializationContext

from contracts import messages
from contracts.card_order import CHANGE_UPDATES
from security.codec import AesGcmCodec
from security.sealing import EDGE, RECEIVER, WORKER
from temporal_client import data_converter

TEST_OPERATOR = "operator:tester"

SENDER_OF_KIND: dict[str, str] = {
    messages.CARD_ORDER_START: EDGE,
    messages.CARD_TRACKING_START: EDGE,
    messages.D1_BATCH_START: EDGE,
    messages.ORPHAN_INBOX_START: RECEIVER,
    messages.D1_NOTIFICATION: RECEIVER,
    messages.ORPHAN_RECORD: RECEIVER,
    messages.RECONCILE: TEST_OPERATOR,
    messages.BATCH_RESULT: WORKER,
    **{update: TEST_OPERATOR for update in CHANGE_UPDATES.values()},
    # The issuer's event hub (events/hub.py): the worker's events, the edge's endpoints.
    messages.EVENT_HUB_START: EDGE,
    messages.EVENT_PAGE_START: WORKER,
    messages.EVENT_BATCH: WORKER,
    messages.CREATE_ENDPOINT: EDGE,
    messages.UPDATE_ENDPOINT: EDGE,
    messages.ROTATE_SECRET: EDGE,
    messages.REDELIVER: EDGE,
}


def kind_of(payload: Payload) -> str | None:
    if payload.metadata.get("encoding") != b"json/plain":
        return None
    try:
        doc = json.loads(payload.data)
    except ValueError:
        return None
    kind = doc.get("kind") if isinstance(doc, dict) else None
    return kind if isinstance(kind, str) else None


class SealsAsSender(PayloadCodec, WithSerializationContext):
    """Seals each message as the role that sends its kind in production; anything else (not a
    message) as ``codec`` does. Opens like ``codec``."""

    def __init__(self, codec: AesGcmCodec) -> None:
        self.codec = codec
        self._by_sealer: dict[str, AesGcmCodec] = {codec.sealer: codec}

    def with_context(self, context: SerializationContext) -> SealsAsSender:
        return SealsAsSender(self.codec.with_context(context))

    def sealing_as(self, sealer: str) -> AesGcmCodec:
        return self.codec.sealing_as(sealer)

    def _sealer(self, sealer: str) -> AesGcmCodec:
        if sealer not in self._by_sealer:
            self._by_sealer[sealer] = self.codec.sealing_as(sealer)
        return self._by_sealer[sealer]

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._sealer(SENDER_OF_KIND.get(kind_of(p) or "", self.codec.sealer)).encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self.codec.decode(payloads)


def as_senders(codec: AesGcmCodec) -> SealsAsSender:
    return SealsAsSender(codec)


def as_role(client: Client, sealer: str) -> Client:
    """The same connection, sealing everything as ``sealer`` ("worker", "receiver",
    "operator:alice", ...); ``client`` unchanged when it has no product codec."""
    codec = client.data_converter.payload_codec
    if not isinstance(codec, SealsAsSender | AesGcmCodec):
        return client
    config = client.config()
    config["data_converter"] = data_converter(codec.sealing_as(sealer))
    return Client(**config)


def with_senders(client: Client) -> Client:
    """The same connection, each message sealed as its production sender (:class:`SealsAsSender`)."""
    codec = client.data_converter.payload_codec
    if not isinstance(codec, AesGcmCodec):
        return client
    config = client.config()
    config["data_converter"] = data_converter(SealsAsSender(codec))
    return Client(**config)
