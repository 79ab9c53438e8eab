"""Backoff is bounded and jittered, and D1's Retry-After wins when it is given."""

from __future__ import annotations

from datetime import timedelta

import httpx

from activities.d1_calls import BACKOFF_CAP_S, backoff_delay
from activities.d1_client import D1Rejected, D1Unavailable, classify


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
