"""What a failed D1 call means, and how a refusal ends the order (pure; the workflows apply it).

A D1 activity fails with an ``ActivityError`` whose cause says why (activities/contract.py):
D1 refused (``D1Rejected``), the worker refused to send card data in clear
(``CardDataInClear``), or D1 stayed unreachable until the give-up window closed;
:func:`call_failure` decodes that once, for every workflow. D1's ``CRYPTO_ERROR``
(docs/d1/errors.md) means a key D1 has since retired, so the order gets its own outcome
and a reason that tells the operator what to do (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from temporalio.exceptions import ActivityError, ApplicationError

from activities.contract import CARD_DATA_IN_CLEAR, D1_REJECTED
from contracts.card_order import OrderError, Outcome

CRYPTO_ERROR = "CRYPTO_ERROR"
RESUBMIT_WITH_CURRENT_KEY = (
    "D1 could not decrypt the card data (CRYPTO_ERROR): the order was encrypted for a D1 key "
    "D1 no longer accepts; re-submit with the current D1 key (a new issuerRequestId)"
)
GAVE_UP = "D1 did not accept the order within the give-up window"


@dataclass(frozen=True)
class CallFailure:
    """Why an activity calling D1 failed: ``refusal`` is D1's final refusal (None: D1 did
    not refuse); ``card_data_in_clear``: the worker refused to send the body; ``text``: the
    failure's message (paths and codes only, never card data)."""

    text: str
    refusal: dict[str, Any] | None = None
    card_data_in_clear: bool = False


def call_failure(err: ActivityError) -> CallFailure:
    cause = err.cause
    text = str(cause or err)
    if isinstance(cause, ApplicationError) and cause.type == D1_REJECTED:
        detail = cause.details[0] if cause.details else None
        return CallFailure(text, refusal=detail if isinstance(detail, dict) else {})
    if isinstance(cause, ApplicationError) and cause.type == CARD_DATA_IN_CLEAR:
        return CallFailure(cause.message, card_data_in_clear=True)
    return CallFailure(text)


class Ending(NamedTuple):
    outcome: Outcome
    reason: str | None
    error: OrderError


def refused_by_d1(info: Mapping[str, Any]) -> Ending:
    """D1 answered the order request with a final refusal (a 4xx other than 401/408/429)."""
    code = info.get("errorCode")
    text = info.get("error")
    error = OrderError(source="submit", http_status=info.get("httpStatus"), error_code=code, error=text)
    if code == CRYPTO_ERROR:
        return Ending(Outcome.CRYPTO_REJECTED, RESUBMIT_WITH_CURRENT_KEY, error)
    return Ending(Outcome.REJECTED, code or text, error)


def gave_up(cause: str) -> Ending:
    return Ending(Outcome.SUBMIT_FAILED, GAVE_UP, OrderError(source="submit", error=cause))


def submission_ending(failure: CallFailure) -> Ending:
    """How a failed submission ends the order: refused by D1, not sent, or given up."""
    if failure.refusal is not None:
        return refused_by_d1(failure.refusal)
    if failure.card_data_in_clear:
        return Ending(
            Outcome.REJECTED,
            "card data outside encryptedData: nothing was sent to D1",
            OrderError(source="submit", error_code=CARD_DATA_IN_CLEAR, error=failure.text),
        )
    return gave_up(failure.text)
