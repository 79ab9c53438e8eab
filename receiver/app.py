"""The notification receiver's HTTP app: ``POST /notifications/d1/v2/issuers/{issuerId}/cards``.

It answers 204 only after Temporal accepted a signal for every operation in the body
(bulk bodies carry many, for different cards), 503 when Temporal cannot take them (D1
retries), 400 with a readable reason for a body that is not JSON or lacks required
fields, 413 for an oversized body. Notifications about closed or unknown orders get 204
and are recorded.
"""

from __future__ import annotations

import asyncio
import json
import logging

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from d1.notifications import NotificationBody
from observability.tracing import NotificationTracingMiddleware
from receiver.auth import ReceiverAuth
from receiver.routing import NotificationRouter, TemporalUnavailable

log = logging.getLogger("receiver")

ISSUER_ID_LEN = 10


def _problem(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def _validation_reasons(err: ValidationError) -> list[str]:
    out = []
    for e in err.errors(include_input=False, include_url=False):
        path = ".".join(str(p) for p in e["loc"]) or "(body)"
        out.append(f"{path}: {e['msg']}")
    return out


def create_app(
    router: NotificationRouter, *, max_body_bytes: int = 1_048_576, auth: ReceiverAuth | None = None
) -> Starlette:
    """``auth`` (receiver/auth.py) enforces the client certificate and, when enabled, the
    bearer token; without it the app trusts its caller (in-process tests, dev mode)."""

    async def notify(request: Request) -> Response:
        issuer_id = request.path_params["issuerId"]
        if auth is not None and (refusal := auth.check_notification(request, issuer_id)) is not None:
            return refusal
        if len(issuer_id) != ISSUER_ID_LEN:
            return _problem(400, "issuerId must be exactly 10 characters")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return _problem(413, f"body larger than {max_body_bytes} bytes")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_body_bytes:
                return _problem(413, f"body larger than {max_body_bytes} bytes")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            return _problem(400, "body is not valid JSON (UTF-8)")
        try:
            body = NotificationBody.model_validate(data)
        except ValidationError as err:
            return JSONResponse(
                {"error": "notification body does not match the D1 contract", "fields": _validation_reasons(err)},
                status_code=400,
            )
        except RecursionError:
            return _problem(400, "body is nested too deeply")
        try:
            await asyncio.gather(*(router.deliver(issuer_id, op) for op in body.operations))
        except TemporalUnavailable as err:
            log.error("Temporal unavailable, answering 503 so that D1 retries: %s", err)
            return Response(status_code=503, headers={"Retry-After": "5"})
        return Response(status_code=204)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def stats(request: Request) -> Response:
        # Operators only (RECEIVER_OPERATOR_TOKENS_FILE); without auth nothing is configured: 404.
        refusal = auth.check_operator(request) if auth is not None else _problem(404, "not found")
        if refusal is not None:
            return refusal
        s = router.stats
        return JSONResponse(
            {
                "received": s.received,
                "signaled": s.signaled,
                "orphaned": s.orphaned,
                "byOperation": s.by_operation,
                "recentOrphans": s.orphans[-50:],
            }
        )

    return Starlette(
        routes=[
            Route("/notifications/d1/v2/issuers/{issuerId}/cards", notify, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/_receiver/stats", stats, methods=["GET"]),
            *(auth.routes() if auth is not None else []),
        ],
        # A SERVER span per notification request (observability/tracing.py).
        middleware=[Middleware(NotificationTracingMiddleware)],
    )
