"""The issuer API's app: ``create_app`` wires the routes (issuer_api/orders.py, batches.py,
trackings.py, webhooks.py), the problem answers (issuer_api/problems.py), the limits (issuer_api/limits.py)
and the authentication (issuer_api/auth.py); docs/issuer-api.md is the guide."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware import Middleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.service import RPCError

from events.feed import EventFeed
from issuer_api import batches, cards, trackings, webhooks
from issuer_api import orders as orders_routes
from issuer_api.auth import SCOPES, ApiAuth
from issuer_api.context import ApiContext
from issuer_api.limits import RequestTimeout, TemporalGate
from issuer_api.models import CardOrderRequest, ChangeBody, Health, TrackingRequest
from issuer_api.problems import HANDLERS, Problem
from settings import EventsSettings, IssuerApiSettings
from starter.api import CardOrders

TITLE = "Card orders: issuer API"
VERSION = "1.0.0"
READY_TIMEOUT_S = 2.0


def create_app(
    orders: CardOrders,
    settings: IssuerApiSettings,
    *,
    auth: ApiAuth | None = None,
    events: EventsSettings | None = None,
) -> FastAPI:
    """``auth`` defaults to the settings' (mutual TLS when the TLS files are set, OAuth when configured);
    ``events`` to ``EVENTS_*`` (the webhook URL checks)."""
    app = FastAPI(
        title=TITLE,
        version=VERSION,
        summary="Order physical payment cards from Thales D1 and follow them.",
        description=(
            "Every call is authenticated by mutual TLS (the client certificate names the issuers it may act "
            "for) and, where configured, an OAuth 2.0 bearer token with the scopes "
            + ", ".join(f"`{s}` ({what})" for s, what in SCOPES.items())
            + ". Errors are RFC 9457 problem details. Guide: docs/issuer-api.md."
        ),
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        exception_handlers=HANDLERS,  # type: ignore[arg-type]
        middleware=[Middleware(RequestTimeout, seconds=settings.request_timeout_s)],
    )
    app.state.auth = auth or ApiAuth.from_settings(settings)
    app.state.context = ApiContext(
        orders=orders,
        settings=settings,
        auth=app.state.auth,
        gate=TemporalGate(settings.temporal_concurrency, settings.shed_after_s),
        events_settings=events or EventsSettings(),
        feed=EventFeed(orders.client),
    )
    for router in (orders_routes.router, batches.router, trackings.router, webhooks.router, cards.router):
        app.include_router(router)

    @app.get(
        "/v1/health/live",
        summary="The process answers",
        response_model=Health,
        response_model_exclude_none=True,
        tags=["health"],
    )
    async def live() -> Health:
        return Health(status="ok")

    @app.get(
        "/v1/health/ready",
        summary="Ready when Temporal answers",
        response_model=Health,
        response_model_exclude_none=True,
        tags=["health"],
        responses={503: {"description": "Temporal does not answer", "model": Health}},
    )
    async def ready(request: Request) -> Any:
        client = orders.client
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await client.workflow_service.get_system_info(GetSystemInfoRequest())
        except (TimeoutError, RPCError, RuntimeError):
            body = Health(status="unavailable", detail="Temporal does not answer").model_dump(exclude_none=True)
            return JSONResponse(body, status_code=503, headers={"retry-after": "5"})
        return Health(status="ok")

    app.openapi = lambda: openapi(app)  # type: ignore[method-assign]
    return app


def openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the schemas the routes name by reference (bodies read raw)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=[
            {"name": "card orders", "description": "Order, read, list and change card orders"},
            {"name": "card order batches", "description": "Many orders in one call"},
            {"name": "card trackings", "description": "D1's tracking hub"},
            {"name": "webhooks", "description": "Webhook endpoints and the event feed (docs/events.md)"},
            {"name": "health", "description": "Liveness and readiness"},
        ],
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    # FastAPI documents its own 422; this API answers every invalid request 400 (issuer_api/problems.py).
    for operations in schema["paths"].values():
        for operation in operations.values():
            operation["responses"].pop("422", None)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    bodies: tuple[type[BaseModel], ...] = (Problem, CardOrderRequest, ChangeBody, TrackingRequest, *webhooks.BODIES)
    for model in bodies:
        definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(definition.pop("$defs", {}))
        components[model.__name__] = definition
    app.openapi_schema = schema
    return schema
