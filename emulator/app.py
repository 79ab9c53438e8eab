"""The emulator as a Starlette application: ``create_app(settings)``.

The state object is built eagerly (so the encryption key exists and tests can reach
``app.state.emulator`` before serving); background work (notification client, production
simulations) starts and stops with the application lifespan. The sandbox admin API is
mounted only with ``EMULATOR_ADMIN_API_ENABLED=true`` (its health check always is).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.admin import admin_routes, health_routes
from emulator.config import EmulatorSettings
from emulator.d1_api import build_routes, dispatch
from emulator.error_codes import D1Error, ErrorCode
from emulator.state import EmulatorState

log = logging.getLogger(__name__)

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def _http_exception(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}.get(status, ErrorCode.SERVER_ERROR)
    return JSONResponse(D1Error(code, http_status=status).body(), status_code=status)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # The type only: an exception message could in theory carry request data.
    log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.scope.get("path"))
    return JSONResponse(D1Error(ErrorCode.SERVER_ERROR).body(), status_code=500)


def create_app(settings: EmulatorSettings) -> Starlette:
    state = EmulatorState(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    # Without EMULATOR_ADMIN_API_ENABLED the admin paths fall through to the catch-all: 404.
    admin = admin_routes() if settings.admin_api_enabled else []
    app = Starlette(
        routes=[*health_routes(), *admin, Route("/{path:path}", dispatch, methods=ALL_METHODS)],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_exception, Exception: _unexpected},
    )
    app.state.emulator = state
    app.state.d1_routes = build_routes(state.program.interface)
    return app
