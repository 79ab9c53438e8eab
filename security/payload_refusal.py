"""The *refused* marker the codec puts in place of a payload it would not open
(docs/security.md, "Nobody without the product's keys can change an order"): raising would
wedge the whole workflow activation, a marker fails only that one argument. No crypto here,
so the workflow sandbox can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import EncodingPayloadConverter

from security.sealing import FOR_READERS, SENDER_SEALED

REFUSED_ENCODING = "binary/refused"
REASON_KEY = "refused-reason"
UNENCRYPTED = "unencrypted"  # not sealed at all: a client without the product's keys
UNKNOWN_KEY = "unknown_key"  # sealed by a key this process does not have
TAMPERED = "tampered"  # sealed, but authentication failed
WRONG_WORKFLOW = "wrong_workflow"  # sealed for another workflow (a payload copied across orders)


class UnauthenticatedPayload(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"payload refused by the payload codec ({reason}): not sealed by a known key")


def refused(reason: str) -> Payload:
    return Payload(metadata={"encoding": REFUSED_ENCODING.encode(), REASON_KEY: reason.encode()}, data=b"")


def refusal_reason(payload: Payload) -> str | None:
    if payload.metadata.get("encoding") != REFUSED_ENCODING.encode():
        return None
    return payload.metadata.get(REASON_KEY, b"").decode() or UNENCRYPTED


class RefusedPayloadConverter(EncodingPayloadConverter):
    """Never produces the marker; turns one back into :class:`UnauthenticatedPayload`."""

    @property
    def encoding(self) -> str:
        return REFUSED_ENCODING

    def to_payload(self, value: Any) -> Payload | None:
        return None

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        raise UnauthenticatedPayload(refusal_reason(payload) or UNENCRYPTED)


class ProductPayloadConverter(PydanticPayloadConverter):
    """Pydantic JSON, the refusal marker, and the mark that tells the codec a payload is not a
    message (security/sealing.py, ``FOR_READERS``): a result or an activity payload is sealed
    for readers, a message with its sender's key.

    One instance serves the process. temporalio builds a payload converter for every data
    converter it derives, and it derives two per workflow activation and one per payload of an
    activity or a child (``DataConverter.__post_init__``, ``with_context``), mostly only to
    replace it; each would start with an empty cache of pydantic type adapters. The converter
    keeps no state but that cache (thread-safe: ``functools.lru_cache``), so sharing it changes
    no result (docs/benchmarks.md, "The sandbox's price").
    """

    _shared: ClassVar[ProductPayloadConverter | None] = None

    def __new__(cls) -> ProductPayloadConverter:
        shared = cls.__dict__.get("_shared")
        if shared is None:
            shared = super().__new__(cls)
            PydanticPayloadConverter.__init__(shared)
            shared._set_converters(*shared.converters.values(), RefusedPayloadConverter())
            cls._shared = shared
        return shared

    def __init__(self) -> None:
        pass  # set up once, in __new__

    def to_payloads(self, values: Sequence[Any]) -> list[Payload]:
        payloads = super().to_payloads(values)
        for value, payload in zip(values, payloads, strict=True):
            if not isinstance(value, RawValue) and not getattr(type(value), SENDER_SEALED, False):
                payload.metadata[FOR_READERS] = b"1"
        return payloads
