"""Bounds of the service: request bodies (413), calls in flight toward Temporal (429 with
``Retry-After`` when a request waits too long for one: load is shed here, not in Temporal),
the time a request may take (503), and Temporal being unreachable (503)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.service import RPCError, RPCStatusCode

from issuer_api.problems import ProblemError, problem_response
from security.bounded_body import BodyTooLarge, read_bounded

log = logging.getLogger("issuer_api.limits")

RETRY_AFTER_S = 1
# Answers of Temporal that mean "not now" rather than "no".
_UNAVAILABLE = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED})


def unavailable(detail: str = "Temporal is unavailable; retry later") -> ProblemError:
    return ProblemError(503, "unavailable", detail, headers={"retry-after": str(RETRY_AFTER_S * 5)})


class TemporalGate:
    """At most ``concurrency`` calls toward Temporal at once; a request waits ``shed_after_s`` for
    a slot, then is answered 429. One gate per process: replicas each have their own."""

    def __init__(self, concurrency: int, shed_after_s: float) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._shed_after_s = shed_after_s

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            if self._slots.locked():
                async with asyncio.timeout(self._shed_after_s):
                    await self._slots.acquire()
            else:  # a free slot is taken at once: no timer to arm and cancel on every request
                await self._slots.acquire()
        except TimeoutError:
            raise ProblemError(
                429,
                "overloaded",
                "too many requests in flight; retry later",
                headers={"retry-after": str(RETRY_AFTER_S)},
            ) from None
        try:
            yield
        except RPCError as err:
            if err.status in _UNAVAILABLE:
                log.warning("Temporal unavailable: %s", err.status.name if err.status else err)
                raise unavailable() from None
            raise
        except RuntimeError as err:
            # A lazy client that could not connect yet (as receiver/routing.py tells it apart).
            if str(err).startswith("Failed client connect"):
                log.warning("Temporal unreachable: cannot connect")
                raise unavailable() from None
            raise
        finally:
            self._slots.release()


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON, or a 413 (larger than ``limit``) / 400 (not JSON) problem."""
    try:
        raw = await read_bounded(request, limit)
    except BodyTooLarge:
        raise ProblemError(413, "too-large", f"the body is larger than {limit} bytes") from None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ProblemError(400, "invalid-json", "the body is not valid JSON (UTF-8)") from None


class RequestTimeout:
    """Pure ASGI: a request still unanswered after ``seconds`` gets 503 (nothing was sent yet),
    or is cut (its answer had begun)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if started:
                raise
            log.warning("%s %s timed out after %ss", scope.get("method"), scope.get("path"), self.seconds)
            await problem_response(unavailable("the request took too long; retry later"))(scope, receive, send)
