"""Backoff is bounded and jittered, and D1's Retry-After wins when it is given."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from activities.d1_calls import BACKOFF_CAP_S, backoff_delay
from activities.d1_client import D1Client, D1Rejected, D1Unavailable, classify
from activities.token_provider import TokenError
from d1.assumptions import D1Interface
from observability.metrics import ProductMetrics


def test_retry_after_is_honoured() -> None:
    assert backoff_delay(1, 7.0) == timedelta(seconds=7)


def test_backoff_is_jittered_and_capped() -> None:
    delays = {backoff_delay(3, None) for _ in range(50)}
    assert len(delays) > 1
    assert all(timedelta(seconds=2) <= d <= timedelta(seconds=4) for d in delays)
    assert all(backoff_delay(40, None) <= timedelta(seconds=BACKOFF_CAP_S) for _ in range(20))


def _resp(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_classification_of_d1_answers() -> None:
    assert isinstance(classify(_resp(503)), D1Unavailable)
    throttled = classify(_resp(429, {"errorCode": "TOO_MANY"}, {"Retry-After": "3"}))
    assert isinstance(throttled, D1Unavailable) and throttled.retry_after_s == 3.0
    rejected = classify(_resp(400, {"errorCode": "FIELD_INVALID_FORMAT", "error": "shipment.deliveryAddress.zipCode"}))
    assert isinstance(rejected, D1Rejected)
    assert (rejected.http_status, rejected.error_code) == (400, "FIELD_INVALID_FORMAT")
    assert isinstance(classify(_resp(409, {"errorCode": "CARD_ALREADY_ORDERED"})), D1Rejected)
    assert isinstance(classify(_resp(408)), D1Unavailable)


class _RefusingTokens:
    """A token provider whose token endpoint refuses us (our signing key or kid is wrong)."""

    async def get(self) -> str:
        raise TokenError("invalid_grant: unknown kid", status=400, retryable=False)

    def invalidate(self, token: str) -> None:
        pass


async def test_a_refused_token_request_is_retried_not_a_rejection_of_the_order() -> None:
    """Our misconfiguration must not end every order REJECTED while it lasts."""
    client = D1Client(httpx.AsyncClient(), _RefusingTokens(), banking_url="https://d1.invalid/banking/v1")  # type: ignore[arg-type]
    with pytest.raises(D1Unavailable, match="token refused"):
        await client.submit_order("TESTISS001", "card-1", {"encryptedData": "x"}, correlation_id="c")


async def test_each_call_is_labelled_by_its_endpoint_whatever_its_path() -> None:
    """Guessed paths are configurable, so the label comes from the call, not the path."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(202, json={"operationId": "op-1"})

    class _Tokens:
        async def get(self) -> str:
            return "token"

        def invalidate(self, token: str) -> None:
            pass

    iface = D1Interface(pullAndChangePath="/issuers/{issuerId}/cards/{cardId}/change")
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    client = D1Client(http, _Tokens(), banking_url="https://d1.invalid/banking/v1", interface=iface)  # type: ignore[arg-type]
    calls: list[str] = []
    real = ProductMetrics.d1_call

    def record(self: ProductMetrics, endpoint: str, status_code: str, seconds: float) -> None:
        calls.append(endpoint)
        real(self, endpoint, status_code, seconds)

    ProductMetrics.d1_call = record  # type: ignore[method-assign]
    try:
        await client.pull_and_change("TESTISS001", "card-1", {"type": "CANCEL"}, correlation_id="c")
        await client.track_card("TESTISS001", "card-1", {"trackingType": "RETURN"}, correlation_id="c")
    finally:
        ProductMetrics.d1_call = real  # type: ignore[method-assign]
    assert calls == ["pull_change", "track"]
    assert seen[0] == "/banking/v1/issuers/TESTISS001/cards/card-1/change"
