"""The activities of a card order: submit, status, pull & change, and the encryption of
orders started before edge encryption (names and types: activities/contract.py). Each is
thin: one D1 call through activities/d1_calls.py, which heartbeats, checks the body for
card data and translates D1's errors into Temporal's retry vocabulary.
"""

from __future__ import annotations

from typing import Any

from jwcrypto import jwk
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import contract as api
from activities.contract import (
    LegacyEncryptInput,
    PullAndChangeInput,
    PullAndChangeResult,
    StatusInput,
    SubmitInput,
    SubmitResult,
)
from activities.d1_calls import correlation_id, guard, heartbeating, translate
from activities.d1_client import D1Client, D1Rejected, D1Unavailable
from d1.jwe import encrypt_for_d1
from d1.notifications import OperationNotification


class CardOrderActivities:
    """``legacy_encryption_key``: D1's key, for orders started before edge encryption only
    (their input carries the clear order); None once no such order is open.
    ``clear_members``: top-level members the program sends outside the JWE on purpose."""

    def __init__(
        self, d1: D1Client, *, legacy_encryption_key: jwk.JWK | None = None, clear_members: frozenset[str] = frozenset()
    ) -> None:
        self._d1 = d1
        self._legacy_key = legacy_encryption_key
        self._clear_members = clear_members

    @activity.defn(name=api.SUBMIT_ORDER)
    async def submit_order(self, inp: SubmitInput) -> SubmitResult:
        guard(inp.body, self._clear_members)
        try:
            async with heartbeating():
                op_id = await self._d1.submit_order(
                    inp.issuer_id,
                    inp.card_id,
                    inp.body,
                    correlation_id=correlation_id(inp.issuer_id, inp.issuer_request_id),
                )
        except (D1Rejected, D1Unavailable) as exc:
            raise translate(exc) from None
        return SubmitResult(operation_id=op_id)

    @activity.defn(name=api.FETCH_PRODUCTION_STATUS)
    async def fetch_production_status(self, inp: StatusInput) -> OperationNotification | None:
        try:
            async with heartbeating():
                return await self._d1.production_status(
                    inp.issuer_id, inp.card_id, correlation_id=correlation_id(inp.issuer_id, inp.issuer_request_id)
                )
        except (D1Rejected, D1Unavailable) as exc:
            raise translate(exc) from None

    @activity.defn(name=api.REQUEST_PULL_AND_CHANGE)
    async def request_pull_and_change(self, inp: PullAndChangeInput) -> PullAndChangeResult:
        """Ask D1 to cancel / accelerate / redirect. The correlation id is stable per change,
        so a retry after a lost answer is recognised by D1 (the emulator) as the same request."""
        guard(inp.body, frozenset())
        try:
            async with heartbeating():
                op_id = await self._d1.pull_and_change(
                    inp.issuer_id,
                    inp.card_id,
                    inp.body,
                    correlation_id=correlation_id(inp.issuer_id, f"{inp.issuer_request_id}:{inp.change_id}"),
                )
        except (D1Rejected, D1Unavailable) as exc:
            raise translate(exc) from None
        return PullAndChangeResult(operation_id=op_id or None)

    # ------------------------------------------------ orders started before edge encryption

    def _legacy_jwe(self, inp: LegacyEncryptInput) -> str:
        if self._legacy_key is None:
            raise ApplicationError(
                "this order was started before card data was encrypted at the issuer's edge, and this worker "
                "has no D1 encryption key (D1_ENCRYPTION_PUBLIC_KEY_FILE) to encrypt it: re-submit the order",
                type=api.LEGACY_ORDER_UNSUPPORTED,
                non_retryable=True,
            )
        return encrypt_for_d1(inp.order.sensitive_plaintext(), self._legacy_key)

    @activity.defn(name=api.LEGACY_ENCRYPT_CARD_DATA)
    async def encrypt_card_data(self, inp: LegacyEncryptInput) -> str:
        return self._legacy_jwe(inp)

    @activity.defn(name=api.LEGACY_ENCRYPT_AND_SUBMIT)
    async def encrypt_and_submit(self, inp: LegacyEncryptInput) -> SubmitResult:
        order = inp.order
        body = order.d1_body(self._legacy_jwe(inp))
        return await self.submit_order(
            SubmitInput(
                issuer_id=order.issuerId, card_id=order.cardId, issuer_request_id=order.issuerRequestId, body=body
            )
        )

    def all(self) -> list[Any]:
        """Every activity, for the worker to register."""
        return [
            self.submit_order,
            self.fetch_production_status,
            self.request_pull_and_change,
            self.encrypt_card_data,
            self.encrypt_and_submit,
        ]
