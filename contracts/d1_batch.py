"""The D1 batch submission's contract: many cards in one call to D1's "Order cards" API.

Each card stays its own ``CardOrderWorkflow`` (``CardOrderInput.batch`` set: it waits for
its result instead of calling D1); one ``D1BatchSubmissionWorkflow`` (workflows/d1_batch.py)
per batch makes the call (docs/d1/batch.md). Its id is derived from the card workflows it
holds, so re-running an interrupted file starts nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from contracts import messages
from contracts.card_order import ContractModel
from contracts.messages import Message

WORKFLOW_TYPE = "D1BatchSubmissionWorkflow"
# Sent by the batch workflow to each card's CardOrderWorkflow (SubmissionResult).
RESULT_SIGNAL = "d1_submission_result"


def batch_key(card_workflow_ids: Iterable[str]) -> str:
    """Stable for the same set of cards, whatever their order."""
    digest = hashlib.sha256("\n".join(sorted(card_workflow_ids)).encode()).hexdigest()
    return digest[:24]


def workflow_id(issuer_id: str, key: str) -> str:
    return f"d1-batch:{issuer_id}:{key}"


class BatchCard(ContractModel):
    workflow_id: str  # the card's CardOrderWorkflow
    card_id: str
    issuer_request_id: str
    # D1's card item for this card: ids, services, ..., and the JWE as encryptedData.
    item: dict[str, Any]


class BatchInput(Message):
    """Sealed by the edge (the starter's batch path)."""

    kind: Literal["d1_batch.start"] = messages.D1_BATCH_START
    issuer_id: str
    cards: list[BatchCard] = Field(min_length=1)
    # Retrying D1 stops after this long; every card then ends SUBMIT_FAILED.
    give_up_after: timedelta = timedelta(hours=24)


class SubmissionResult(Message):
    """Sealed by the worker (the batch workflow); the card refuses a result of another batch."""

    kind: Literal["d1_submission_result"] = messages.BATCH_RESULT
    batch_workflow_id: str
    operation_id: str | None = None
    # D1 refused this item (or the whole request): {"httpStatus", "errorCode", "error"}.
    refusal: dict[str, Any] | None = None
    # D1 could not be reached within the give-up window.
    gave_up: str | None = None


class BatchReport(ContractModel):
    cards: int
    accepted: int
    refused: int
    failed: int
    not_signalled: list[str] = Field(default_factory=list)  # card workflows already closed
