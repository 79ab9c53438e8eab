"""The notification receiver's HTTP app: ``POST /notifications/d1/v2/issuers/{issuerId}/cards``
(its answers: docs/architecture.md, step 3 of an order).
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

from d1.assumptions import ACTIVATION_PATH
from d1.notifications import NotificationBody
from observability.logs import log_safe
from observability.tracing import NotificationTracingMiddleware
from receiver.activation import ActivationService, activation_endpoint
from receiver.auth import ReceiverAuth
from receiver.routing import NotificationRouter, TemporalUnavailable
from security.bounded_body import BodyTooLarge, read_bounded

log = logging.getLogger("receiver")

ISSUER_ID_LEN = 10
# D1 agrees the most updates one notification may carry at onboarding (docs/d1/notifications.md).
DEFAULT_MAX_OPERATIONS = 1000


def _problem(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def parse_body(raw: bytes, max_operations: int) -> NotificationBody | Response:
    """The body, or its 400/413 answer. A well-formed body is parsed once, straight into the
    models; anything refused goes the slow way, so every refusal keeps its exact answer
    (not JSON, too many operations (413 before any field problem), the field reasons)."""
    try:
        body = NotificationBody.model_validate_json(raw)
    except (ValidationError, RecursionError):
        return _refusal(raw, max_operations)
    if len(body.operations) > max_operations:
        return _too_many(max_operations)
    return body


def _too_many(max_operations: int) -> Response:
    return _problem(413, f"at most {max_operations} operations per notification (agreed at onboarding)")


def _refusal(raw: bytes, max_operations: int) -> NotificationBody | Response:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return _problem(400, "body is not valid JSON (UTF-8)")
    operations = data.get("operations") if isinstance(data, dict) else None
    if isinstance(operations, list) and len(operations) > max_operations:
        return _too_many(max_operations)
    try:
        return NotificationBody.model_validate(data)
    except ValidationError as err:
        errors = err.errors(include_input=False, include_url=False)
        reasons = [f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in errors]
        return JSONResponse({"error": "notification body does not match the D1 contract", "fields": reasons}, 400)
    except RecursionError:
        return _problem(400, "body is nested too deeply")


def create_app(
    router: NotificationRouter,
    *,
    max_body_bytes: int = 1_048_576,
    max_operations: int = DEFAULT_MAX_OPERATIONS,
    auth: ReceiverAuth | None = None,
    activation: ActivationService | None = None,
) -> Starlette:
    """Without ``auth`` the app trusts its caller (in-process tests, dev mode). With
    ``activation`` it also serves D1's Card Activation call (receiver/activation.py)."""

    async def notify(request: Request) -> Response:
        issuer_id = request.path_params["issuerId"]
        if auth is not None and (refusal := auth.check_notification(request, issuer_id)) is not None:
            return refusal
        if len(issuer_id) != ISSUER_ID_LEN:
            return _problem(400, "issuerId must be exactly 10 characters")
        try:
            raw = await read_bounded(request, max_body_bytes)
        except BodyTooLarge as err:
            return _problem(413, str(err))
        body = parse_body(raw, max_operations)
        if isinstance(body, Response):
            return body
        results = await asyncio.gather(
            *(router.deliver(issuer_id, op) for op in body.operations), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        bugs = [f for f in failures if not isinstance(f, TemporalUnavailable)]
        for bug in bugs:
            router.metrics.receiver_error(issuer_id, "bug")
            log.error(
                "notification for issuer %s failed; answering 500",
                log_safe(issuer_id),
                exc_info=(type(bug), bug, bug.__traceback__),
            )
        if bugs:
            return _problem(500, "the notification could not be processed; it was logged")
        if failures:
            router.metrics.receiver_error(issuer_id, "temporal_unavailable")
            log.error("Temporal unavailable, answering 503 so that D1 retries: %s", failures[0])
            return Response(status_code=503, headers={"Retry-After": "5"})
        return Response(status_code=204)

    async def activate(request: Request) -> Response:
        # The notifications' mutual TLS and OAuth: the same D1 tenant calls both.
        if auth is not None and (refusal := auth.check_notification(request, request.path_params["issuerId"])):
            return refusal
        assert activation is not None
        return await activation_endpoint(request, activation)

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
            *([Route(ACTIVATION_PATH, activate, methods=["POST"])] if activation is not None else []),
            Route("/_receiver/stats", stats, methods=["GET"]),
            *(auth.routes() if auth is not None else []),
        ],
        # A SERVER span per notification request (observability/tracing.py).
        middleware=[Middleware(NotificationTracingMiddleware)],
    )
