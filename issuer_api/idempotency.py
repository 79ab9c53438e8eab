"""Idempotency on ``issuerRequestId`` (the workflow id is the key, starter/api.py): the order's
memo keeps a fingerprint of its request, so that the same id with another body is told apart
from a retry. The fingerprint leaves out ``encryptedData`` (a JWE differs at every encryption)
and covers the masked PAN instead; it holds no card data."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from starter.edge import PreparedOrder

DIGEST = "requestDigest"
REQUESTED_BY = "requestedBy"


def fingerprint(prepared: PreparedOrder) -> str:
    submission = prepared.input.submission
    body = {k: v for k, v in (submission.body if submission else {}).items() if k != "encryptedData"}
    ref = prepared.ref.model_dump(mode="json")
    canonical = json.dumps({"body": body, "ref": ref}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def with_memo(prepared: PreparedOrder, requested_by: dict[str, str], described_as: str) -> PreparedOrder:
    memo: dict[str, Any] = {DIGEST: fingerprint(prepared), REQUESTED_BY: requested_by}
    return replace(prepared, memo=memo, details=f"{prepared.details}; requested by {described_as}")


def same_request(memo: dict[str, Any], prepared: PreparedOrder) -> bool:
    """An order started without a fingerprint (by the Python API, the CLI) is taken as the same."""
    digest = memo.get(DIGEST)
    return digest is None or digest == fingerprint(prepared)
