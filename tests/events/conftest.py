"""A bank's webhook consumer for the events tests: verifies every delivery with the
`standardwebhooks` library (as any receiver would) and can refuse, fail, hang or be slow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from events.api import WebhookEndpoints
from events.contract import EndpointCreated
from stack.servers import free_port, serve
from tests.conftest import ISSUER_ID, TASK_QUEUE, Stack


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    event: dict[str, Any]


@dataclass
class Consumer:
    """``mode``: "ok", "500" (answer 500), "hang" (never answer in time), "slow" (5 s, then 204)."""

    secrets: list[str] = field(default_factory=list)
    mode: str = "ok"
    slow_s: float = 5.0
    deliveries: list[Delivery] = field(default_factory=list)
    refused: int = 0  # attempts answered with an error (500, or verification failed)
    requests: int = 0

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            self.requests += 1
            body = await request.body()
            headers = dict(request.headers)
            if self.mode == "500":
                self.refused += 1
                return Response(status_code=500)
            if self.mode == "hang":
                await asyncio.sleep(30)
            if self.mode == "slow":
                await asyncio.sleep(self.slow_s)
            event = self.verify(body, headers)
            if event is None:
                self.refused += 1
                return Response(status_code=400)
            self.deliveries.append(Delivery(headers, body, event))
            return Response(status_code=204)

        return Starlette(routes=[Route("/hook", receive, methods=["POST"])])

    def verify(self, body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
        for secret in self.secrets:
            try:
                return Webhook(secret).verify(body, headers)  # type: ignore[no-any-return]
            except WebhookVerificationError:
                continue
        return None

    def of_card(self, card_id: str) -> list[dict[str, Any]]:
        """What the bank keeps for one card: the deliveries de-duplicated by event id, in arrival order."""
        seen: set[str] = set()
        out = []
        for d in self.deliveries:
            if d.event["card_id"] == card_id and d.event["id"] not in seen:
                seen.add(d.event["id"])
                out.append(d.event)
        return out

    async def wait_for(self, predicate: Any, *, timeout: float = 60.0, what: str = "deliveries") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout} s ({len(self.deliveries)} received)")
            await asyncio.sleep(0.1)


@asynccontextmanager
async def serving(consumer: Consumer, port: int) -> AsyncIterator[str]:
    async with serve(consumer.app(), port=port) as url:
        yield f"{url}/hook"


@dataclass
class Registered:
    consumer: Consumer
    url: str
    port: int
    created: EndpointCreated

    @property
    def endpoint_id(self) -> str:
        return self.created.endpoint.endpoint_id


def endpoints_of(stack: Stack) -> WebhookEndpoints:
    return WebhookEndpoints(stack.client, TASK_QUEUE, stack.local.events_settings())


@asynccontextmanager
async def registered(stack: Stack, consumer: Consumer, *, serve_now: bool = True) -> AsyncIterator[Registered]:
    """An endpoint of the test issuer pointing at ``consumer`` (served now, or later by the test
    with :func:`serving` on the same port); disabled when the test ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    endpoints = endpoints_of(stack)
    created = await endpoints.create(ISSUER_ID, url, ["*"], description="tests/events")
    consumer.secrets.append(created.secret)
    try:
        if serve_now:
            async with serving(consumer, port):
                yield Registered(consumer, url, port, created)
        else:
            yield Registered(consumer, url, port, created)
    finally:
        await endpoints.disable(ISSUER_ID, created.endpoint.endpoint_id)


@pytest_asyncio.fixture
async def consumer(stack: Stack) -> AsyncIterator[Registered]:
    async with registered(stack, Consumer()) as reg:
        yield reg
