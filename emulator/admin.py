"""Sandbox-only admin API under ``/_emulator`` (no authentication: never expose it).

Real D1 has nothing like it. It exists so tests and developers can count what the
issuer side really sent (exactly-once checks), inject faults, change timing, read the
notification bodies captured instead of sent, and fetch the encryption public key.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.faults import FaultsRequest
from emulator.state import EmulatorState

PREFIX = "/_emulator"


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Also forget every order (cancelling simulations and pending notifications).
    orders: bool = False


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def _bad_request(reason: str) -> JSONResponse:
    return JSONResponse({"errorCode": "FIELD_INVALID_FORMAT", "error": reason}, status_code=400)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    return json.loads(raw)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def stats(request: Request) -> Response:
    state = _state(request)
    body = state.stats.to_json()
    body["notificationsPending"] = state.notifier.pending()
    body["simulationsRunning"] = state.simulator.running()
    return JSONResponse(body)


async def get_faults(request: Request) -> Response:
    return JSONResponse(_state(request).faults.to_json())


async def set_faults(request: Request) -> Response:
    state = _state(request)
    try:
        faults = FaultsRequest.model_validate(await _json_body(request))
    except (ValueError, ValidationError) as exc:
        return _bad_request(str(exc) if isinstance(exc, ValidationError) else "body is not valid JSON")
    state.faults.apply(faults)
    return JSONResponse(state.faults.to_json())


async def captured(request: Request) -> Response:
    return JSONResponse(_state(request).notifier.captured)


async def orders(request: Request) -> Response:
    """Current operation object of every order, oldest first (no card data is kept)."""
    return JSONResponse({"orders": [order.snapshot() for order in _state(request).orders.book.all()]})


async def reset(request: Request) -> Response:
    state = _state(request)
    try:
        body = ResetRequest.model_validate(await _json_body(request))
    except (ValueError, ValidationError):
        return _bad_request('body must be empty or {"orders": true|false}')
    await state.reset(forget_orders=body.orders)
    return JSONResponse({"reset": True, "orders": body.orders})


async def public_key(request: Request) -> Response:
    return JSONResponse(_state(request).encryption_keys.public_jwk)


def admin_routes() -> list[BaseRoute]:
    return [
        Route(f"{PREFIX}/health", health, methods=["GET"]),
        Route(f"{PREFIX}/stats", stats, methods=["GET"]),
        Route(f"{PREFIX}/faults", get_faults, methods=["GET"]),
        Route(f"{PREFIX}/faults", set_faults, methods=["POST"]),
        Route(f"{PREFIX}/captured", captured, methods=["GET"]),
        Route(f"{PREFIX}/orders", orders, methods=["GET"]),
        Route(f"{PREFIX}/reset", reset, methods=["POST"]),
        Route(f"{PREFIX}/public-key", public_key, methods=["GET"]),
    ]
