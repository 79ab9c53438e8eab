"""The activities' contract: their names, inputs, results and error types.

The workflows import this module (never the activity implementations, which load httpx),
so the workflow sandbox stays small and a workflow test can register same-named doubles.
Inputs carry identifiers and the D1 body only; the body's card data is the JWE made at
the issuer's edge (contracts/card_order.py, ``D1Submission``).
"""

from __future__ import annotations

from typing import Any

from contracts.card_order import ContractModel

# Activity names (the workflow schedules them by name).
SUBMIT_ORDER = "submit_order"
FETCH_PRODUCTION_STATUS = "fetch_production_status"
REQUEST_PULL_AND_CHANGE = "request_pull_and_change"
SUBMIT_ORDER_BATCH = "submit_order_batch"  # D1's "Order cards": many cards, one call
REQUEST_TRACKING = "request_tracking"  # the tracking hub's Track Card

# Error types the activities raise (``ApplicationError.type``) and the workflow matches.
D1_REJECTED = "D1Rejected"  # non-retryable; details[0] = {"httpStatus", "errorCode", "error"}
D1_UNAVAILABLE = "D1Unavailable"  # retryable, next_retry_delay honours Retry-After
CARD_DATA_IN_CLEAR = "CardDataInClear"  # non-retryable: the body carries card data outside encryptedData


class StatusInput(ContractModel):
    issuer_id: str
    card_id: str
    issuer_request_id: str


class SubmitInput(StatusInput):
    # D1's JSON body; card data only inside encryptedData.
    body: dict[str, Any]


class SubmitResult(ContractModel):
    operation_id: str


class PullAndChangeInput(StatusInput):
    change_id: str
    # The D1 body: {"type": ..., "newDeliveryAddress": {...}}.
    body: dict[str, Any]


class PullAndChangeResult(ContractModel):
    operation_id: str | None = None


class BatchSubmitInput(ContractModel):
    issuer_id: str
    # Stable per batch: D1 support can follow retries; also the batch's correlation id.
    batch_key: str
    # D1's card items, in request order (card data only inside each encryptedData).
    items: list[dict[str, Any]]


class BatchItemResult(ContractModel):
    card_id: str | None = None
    operation_id: str | None = None
    error_code: str | None = None
    error: str | None = None


class BatchSubmitResult(ContractModel):
    http_status: int
    results: list[BatchItemResult]


class TrackInput(ContractModel):
    issuer_id: str
    card_id: str
    tracking_type: str
    body: dict[str, Any]


class TrackResult(ContractModel):
    operation_id: str | None = None
