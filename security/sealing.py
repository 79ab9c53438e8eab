"""Who sealed a payload, as the codec reports it on decoding (security/codec.py). No crypto
here, so the workflow sandbox imports it cheaply: a handler reads ``sealed-by`` to refuse a
message from the wrong role (docs/security.md, "Who may move a card")."""

from __future__ import annotations

import re

from temporalio.api.common.v1 import Payload

# Payload metadata set by the codec when it opens a payload (never trusted from a sender:
# encoding removes both, decoding sets them from the key and the associated data).
SEALED_BY = "sealed-by"
SEALED_FOR = "sealed-for"

EDGE = "edge"  # issuer services: the starter, the CLI's submit, the issuer API
RECEIVER = "receiver"  # D1's calls: notifications, card activations
WORKER = "worker"  # workflows and activities (continue-as-new, batch results, orphans)
OPERATOR = "operator"  # one key per person, "operator:<name>"
# What is not a message (query, update and workflow results, activity payloads, failures) is
# sealed with the readers' key, so that an operator or the edge can read an order's view without
# holding a key any handler accepts a message from: reading is not forging.
READER = "reader"
ROLES = frozenset({EDGE, RECEIVER, WORKER, OPERATOR, READER})

# Set by the payload converter on a payload that is not a message (security/payload_refusal.py);
# the codec seals it with the readers' key and drops the mark.
FOR_READERS = "seal-for-readers"
# A model class with this attribute true is a message: sealed with its sender's own key.
SENDER_SEALED = "sealed_by_sender"

_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


def operator_name(sealer: str | None) -> str | None:
    """``alice`` for ``operator:alice``; None for a role or a malformed name."""
    if sealer is None or not sealer.startswith(f"{OPERATOR}:"):
        return None
    name = sealer[len(OPERATOR) + 1 :]
    return name if _NAME.match(name) else None


def role_of(sealer: str | None) -> str | None:
    if sealer is None:
        return None
    if operator_name(sealer) is not None:
        return OPERATOR
    return sealer if sealer in ROLES else None


def sealer_of(payload: Payload) -> str | None:
    """Who sealed ``payload`` (None: not opened by the codec, e.g. the codec is off)."""
    raw = payload.metadata.get(SEALED_BY)
    return raw.decode(errors="replace") if raw else None


def sealed_for(payload: Payload) -> str | None:
    raw = payload.metadata.get(SEALED_FOR)
    return raw.decode(errors="replace") if raw is not None else None
