"""The activities of a card order. Each is thin: it calls one D1 helper and translates
its errors into Temporal's retry vocabulary.

* ``D1Rejected`` → non-retryable ``ApplicationError`` carrying D1's errorCode/error, which
  ends the order as rejected;
* ``D1Unavailable`` → retryable ``ApplicationError`` whose ``next_retry_delay`` honours
  ``Retry-After`` or else follows a bounded, jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from jwcrypto import jwk
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.d1_client import D1Client, D1Rejected, D1Unavailable
from activities.jwe import encrypt_for_d1
from d1.notifications import OperationNotification
from workflows.messages import (
    D1_REJECTED,
    D1_UNAVAILABLE,
    EncryptInput,
    PullAndChangeInput,
    PullAndChangeResult,
    StatusInput,
    SubmitInput,
    SubmitResult,
)

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0


def correlation_id(issuer_id: str, issuer_request_id: str) -> str:
    """Stable per order (so D1 support can follow retries), derived from ids, not personal data."""
    return hashlib.sha256(f"{issuer_id}:{issuer_request_id}".encode()).hexdigest()[:32]


def backoff_delay(attempt: int, retry_after_s: float | None) -> timedelta:
    if retry_after_s is not None:
        return timedelta(seconds=min(retry_after_s, 10 * BACKOFF_CAP_S))
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, attempt - 1))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


@asynccontextmanager
async def heartbeating(every_s: float = 1.0) -> AsyncIterator[None]:
    """Heartbeat while a D1 call is in flight, so a worker that dies mid-call is noticed
    within the heartbeat timeout (seconds) instead of the whole start-to-close timeout."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every_s)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


def _translate(exc: D1Rejected | D1Unavailable) -> ApplicationError:
    if isinstance(exc, D1Rejected):
        return ApplicationError(
            str(exc),
            {"httpStatus": exc.http_status, "errorCode": exc.error_code, "error": exc.error},
            type=D1_REJECTED,
            non_retryable=True,
        )
    return ApplicationError(
        str(exc),
        {"httpStatus": exc.http_status, "reason": exc.reason},
        type=D1_UNAVAILABLE,
        next_retry_delay=backoff_delay(activity.info().attempt, exc.retry_after_s),
    )


class CardOrderActivities:
    def __init__(self, d1: D1Client, d1_encryption_key: jwk.JWK) -> None:
        self._d1 = d1
        self._enc_key = d1_encryption_key

    @activity.defn(name="encrypt_card_data")
    async def encrypt_card_data(self, inp: EncryptInput) -> str:
        return encrypt_for_d1(inp.order.sensitive_plaintext(), self._enc_key)

    @activity.defn(name="submit_order")
    async def submit_order(self, inp: SubmitInput) -> SubmitResult:
        try:
            async with heartbeating():
                op_id = await self._d1.submit_order(
                    inp.issuer_id,
                    inp.card_id,
                    inp.body,
                    correlation_id=correlation_id(inp.issuer_id, inp.issuer_request_id),
                )
        except (D1Rejected, D1Unavailable) as exc:
            raise _translate(exc) from None
        return SubmitResult(operation_id=op_id)

    @activity.defn(name="encrypt_and_submit")
    async def encrypt_and_submit(self, inp: EncryptInput) -> SubmitResult:
        """Encrypt and submit in one step: one activity fewer per order, and the JWE never
        enters history. Each attempt encrypts afresh; D1 is idempotent on the ids."""
        order = inp.order
        body = order.d1_body(encrypt_for_d1(order.sensitive_plaintext(), self._enc_key))
        return await self.submit_order(
            SubmitInput(
                issuer_id=order.issuerId, card_id=order.cardId, issuer_request_id=order.issuerRequestId, body=body
            )
        )

    @activity.defn(name="fetch_production_status")
    async def fetch_production_status(self, inp: StatusInput) -> OperationNotification | None:
        try:
            async with heartbeating():
                return await self._d1.production_status(
                    inp.issuer_id,
                    inp.card_id,
                    correlation_id=correlation_id(inp.issuer_id, inp.issuer_request_id),
                )
        except (D1Rejected, D1Unavailable) as exc:
            raise _translate(exc) from None

    @activity.defn(name="request_pull_and_change")
    async def request_pull_and_change(self, inp: PullAndChangeInput) -> PullAndChangeResult:
        """Ask D1 to cancel / accelerate / redirect. The correlation id is stable per change,
        so a retry after a lost answer is recognised by D1 (the emulator) as the same request."""
        try:
            async with heartbeating():
                op_id = await self._d1.pull_and_change(
                    inp.issuer_id,
                    inp.card_id,
                    inp.body,
                    correlation_id=correlation_id(inp.issuer_id, f"{inp.issuer_request_id}:{inp.change_id}"),
                )
        except (D1Rejected, D1Unavailable) as exc:
            raise _translate(exc) from None
        return PullAndChangeResult(operation_id=op_id or None)
