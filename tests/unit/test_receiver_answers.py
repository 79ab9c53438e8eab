"""The receiver's answers, with the routing replaced: 503 only when Temporal is unreachable
or times out (D1 retries), 500 with the traceback logged and counted for anything else,
and the caps on what one body may ask."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from temporalio.service import RPCError, RPCStatusCode

from d1.notifications import OperationNotification
from d1.paths import notification_path
from receiver.app import create_app
from receiver.routing import Delivery, RoutingStats, TemporalUnavailable, temporal_unavailable
from tests.support.notifications import operation

ISSUER = "TESTISS001"


@dataclass
class Counted:
    errors: list[tuple[str, str]] = field(default_factory=list)

    def receiver_error(self, issuer_id: str, kind: str) -> None:
        self.errors.append((issuer_id, kind))

    def notification_received(self, issuer_id: str, operation: str) -> None:
        pass


@dataclass
class FakeRouter:
    """Stands in for receiver.routing.NotificationRouter: ``failure`` is raised by deliver."""

    failure: BaseException | None = None
    delivered: list[OperationNotification] = field(default_factory=list)
    metrics: Counted = field(default_factory=Counted)
    stats: RoutingStats = field(default_factory=RoutingStats)

    async def deliver(self, issuer_id: str, op: OperationNotification) -> Delivery:
        if self.failure is not None:
            raise self.failure
        self.delivered.append(op)
        return Delivery.SIGNALED


async def post(router: FakeRouter, body: Any, **app_options: Any) -> httpx.Response:
    app = create_app(router, **app_options)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as http:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await http.post(notification_path(ISSUER), content=content)


def body(n: int = 1) -> dict[str, Any]:
    return {
        "operations": [operation("CARD_PROD_REQUESTED", card_id=f"card-{i}", request_id=f"req-{i}") for i in range(n)]
    }


async def test_a_delivered_body_is_acknowledged() -> None:
    router = FakeRouter()
    assert (await post(router, body(3))).status_code == 204 and len(router.delivered) == 3


async def test_temporal_unreachable_is_a_503_d1_retries() -> None:
    router = FakeRouter(failure=TemporalUnavailable("UNAVAILABLE"))
    response = await post(router, body())
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert router.metrics.errors == [(ISSUER, "temporal_unavailable")]


async def test_a_bug_is_a_500_logged_with_its_traceback_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    router = FakeRouter(failure=ValueError("a bug in routing"))
    response = await post(router, body())
    assert response.status_code == 500
    assert router.metrics.errors == [(ISSUER, "bug")]
    logged = [r for r in caplog.records if r.name == "receiver" and r.levelno == logging.ERROR]
    assert logged and logged[0].exc_info is not None and logged[0].exc_info[0] is ValueError


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (RPCError("down", RPCStatusCode.UNAVAILABLE, b""), True),
        (RPCError("slow", RPCStatusCode.DEADLINE_EXCEEDED, b""), True),
        (RuntimeError("Failed client connect: Server connection error"), True),
        (TimeoutError(), True),
        (RPCError("denied", RPCStatusCode.PERMISSION_DENIED, b""), False),
        (RPCError("bad", RPCStatusCode.INVALID_ARGUMENT, b""), False),
        (KeyError("bug"), False),
    ],
)
def test_only_an_unreachable_or_slow_temporal_counts_as_unavailable(error: BaseException, unavailable: bool) -> None:
    assert temporal_unavailable(error) is unavailable


async def test_more_operations_than_agreed_at_onboarding_is_a_413() -> None:
    router = FakeRouter()
    response = await post(router, body(6), max_operations=5)
    assert response.status_code == 413 and "at most 5 operations" in response.json()["error"]
    assert router.delivered == []
    assert (await post(router, body(5), max_operations=5)).status_code == 204


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("operationId", "x" * 65),
        ("operationId", "op id with spaces"),
        ("cardId", "c" * 49),
        ("issuerRequestId", "r" * 65),
        ("status", "S" * 65),
        ("error", "e" * 1001),
    ],
)
async def test_identifiers_and_texts_are_bounded(member: str, value: str) -> None:
    bad = body()
    bad["operations"][0][member] = value
    response = await post(FakeRouter(), bad)
    assert response.status_code == 400
    assert any(member in field for field in response.json()["fields"]), response.json()
