"""How a D1 refusal of the order request ends the order (pure; the workflow applies it).

The activity reports D1's answer as ``{"httpStatus", "errorCode", "error"}``
(activities/contract.py). D1's documented ``CRYPTO_ERROR`` (docs/d1/errors.md) means D1
could not decrypt ``encryptedData``: with our JWE that happens when the order was
encrypted for a key D1 has since retired, so the order gets its own outcome and a reason
that tells the operator what to do, instead of a generic rejection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from activities.contract import CARD_DATA_IN_CLEAR, LEGACY_ORDER_UNSUPPORTED
from contracts.card_order import OrderError, Outcome

CRYPTO_ERROR = "CRYPTO_ERROR"
RESUBMIT_WITH_CURRENT_KEY = (
    "D1 could not decrypt the card data (CRYPTO_ERROR): the order was encrypted for a D1 key "
    "D1 no longer accepts; re-submit with the current D1 key (a new issuerRequestId)"
)
GAVE_UP = "D1 did not accept the order within the give-up window"


@dataclass(frozen=True)
class Ending:
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


def refused_before_sending(error_type: str | None, message: str) -> Ending | None:
    """The worker refused to send the order at all (None: not such a refusal)."""
    if error_type == CARD_DATA_IN_CLEAR:
        return Ending(
            Outcome.REJECTED,
            "card data outside encryptedData: nothing was sent to D1",
            OrderError(source="submit", error_code=CARD_DATA_IN_CLEAR, error=message),
        )
    if error_type == LEGACY_ORDER_UNSUPPORTED:
        return Ending(Outcome.SUBMIT_FAILED, message, OrderError(source="submit", error_code=error_type, error=message))
    return None


def gave_up(cause: str) -> Ending:
    return Ending(Outcome.SUBMIT_FAILED, GAVE_UP, OrderError(source="submit", error=cause))
