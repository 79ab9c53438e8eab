"""How every D1 call behaves inside an activity.

* it heartbeats while in flight, so a worker that dies mid-call is noticed in seconds;
* a body with card data outside ``encryptedData`` is never sent (non-retryable
  ``CardDataInClear``: paths only, no values);
* ``D1Rejected`` becomes a non-retryable ``ApplicationError`` carrying D1's
  errorCode/error; ``D1Unavailable`` a retryable one whose ``next_retry_delay`` honours
  ``Retry-After`` or else follows a bounded, jittered exponential backoff;
* the ``x-correlation-id`` is stable per order (or change, batch, tracking) and derived
  from ids, never from personal data.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import contract as api
from activities.d1_client import D1Rejected, D1Unavailable
from d1.card_data_guard import CardDataInClear, ensure_no_card_data

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0


def correlation_id(issuer_id: str, issuer_request_id: str) -> str:
    return hashlib.sha256(f"{issuer_id}:{issuer_request_id}".encode()).hexdigest()[:32]


def backoff_delay(attempt: int, retry_after_s: float | None) -> timedelta:
    if retry_after_s is not None:
        return timedelta(seconds=min(retry_after_s, 10 * BACKOFF_CAP_S))
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, attempt - 1))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


@asynccontextmanager
async def d1_call(
    *bodies: dict[str, Any], clear_members: frozenset[str] = frozenset(), every_s: float = 1.0
) -> AsyncIterator[None]:
    """Around one D1 call (the module's rules); ``bodies``: what the call will send."""
    try:
        for body in bodies:
            ensure_no_card_data(body, clear_members=clear_members)
    except CardDataInClear as err:
        raise ApplicationError(str(err), type=api.CARD_DATA_IN_CLEAR, non_retryable=True) from None

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every_s)

    task = asyncio.create_task(beat())
    try:
        yield
    except (D1Rejected, D1Unavailable) as exc:
        raise translate(exc) from None
    finally:
        task.cancel()


def translate(exc: D1Rejected | D1Unavailable) -> ApplicationError:
    if isinstance(exc, D1Rejected):
        return ApplicationError(
            str(exc),
            {"httpStatus": exc.http_status, "errorCode": exc.error_code, "error": exc.error},
            type=api.D1_REJECTED,
            non_retryable=True,
        )
    return ApplicationError(
        str(exc),
        {"httpStatus": exc.http_status, "reason": exc.reason},
        type=api.D1_UNAVAILABLE,
        next_retry_delay=backoff_delay(activity.info().attempt, exc.retry_after_s),
    )
