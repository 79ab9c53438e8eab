"""Payloads the codec would not open, and how the rest of the product sees them.

Every payload the product writes is sealed by the AES-GCM codec (security/codec.py). A
payload that is not (a client without the product's keys sent it), or that is sealed by
an unknown key, or that fails authentication, is not decoded: the codec replaces it with
a *refused* marker carrying the reason, instead of raising. Raising would fail the whole
workflow activation and wedge the order a forged signal was aimed at; a marker only fails
the conversion of that one argument, which the SDK answers by dropping the signal,
rejecting the update or failing the query, while the order goes on.

This module holds only the marker's format and its payload converter (no crypto), so the
workflow sandbox can import it cheaply.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import EncodingPayloadConverter

REFUSED_ENCODING = "binary/refused"
REASON_KEY = "refused-reason"
UNENCRYPTED = "unencrypted"  # not sealed at all: a client without the product's keys
UNKNOWN_KEY = "unknown_key"  # sealed by a key this process does not have
TAMPERED = "tampered"  # sealed, but authentication failed


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
    def __init__(self) -> None:
        super().__init__()
        self._set_converters(*self.converters.values(), RefusedPayloadConverter())
