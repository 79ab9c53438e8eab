"""Sandbox-only admin API under ``/_emulator`` (no authentication: never expose it).

Real D1 has nothing like it. It exists so tests and developers can count what the
issuer side really sent (exactly-once checks), inject faults, change timing, read the
notification bodies captured instead of sent, fetch and rotate the encryption key. It is
served only with ``EMULATOR_ADMIN_API_ENABLED=true`` (off: 404); ``/_emulator/health`` is
always served, for process supervisors.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.faults import FaultsRequest
from emulator.keys import KeyringError
from emulator.scenarios import ScenariosRequest
from emulator.state import EmulatorState

PREFIX = "/_emulator"


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Also forget every order (cancelling simulations and pending notifications).
    orders: bool = False


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


class ActivateRequest(BaseModel):
    """Body of ``POST /_emulator/activate``: the cardholder activates this card now."""

    model_config = ConfigDict(extra="forbid")

    cardId: str = Field(min_length=1, max_length=48)
    issuerId: str = Field(min_length=10, max_length=10)
    maxAttempts: int = Field(default=5, ge=1, le=50)


class RotateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Refuse the replaced key at once (default: it stays accepted as a previous key).
    retirePrevious: bool = False


class RetireRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kid: str = Field(min_length=1, max_length=128)


def _bad_request(reason: str) -> JSONResponse:
    return JSONResponse({"errorCode": "FIELD_INVALID_FORMAT", "error": "$", "reason": reason}, status_code=400)


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
    body["simulationsRunning"] = state.simulator.running() + state.tracking.running()
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
    """Current operation object of every order, oldest first (no card data is kept), with the
    sandbox's own view under ``_emulator`` (channel, shipment, delivery address, changes).
    ``?cardId=`` keeps one card's orders."""
    card_id = request.query_params.get("cardId")
    book = _state(request).orders.book.all()
    return JSONResponse({"orders": [o.admin_view() for o in book if card_id is None or o.card_id == card_id]})


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The holds to release (their ``id`` in GET /_emulator/holds); absent: every open one.
    ids: list[int] | None = None


async def get_holds(request: Request) -> Response:
    """Requests D1 received and has not answered yet, held by a ``"hold": true`` rule."""
    return JSONResponse(_state(request).holds.to_json())


async def release_holds(request: Request) -> Response:
    state = _state(request)
    try:
        body = ReleaseRequest.model_validate(await _json_body(request))
    except (ValueError, ValidationError):
        return _bad_request('body must be empty or {"ids": [<hold id>, ...]}')
    released = state.holds.release(body.ids)
    return JSONResponse({**state.holds.to_json(), "releasedNow": released})


class GroupsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A BULK container ships once no card joined it for this long (and all its cards are done).
    windowMs: int = Field(ge=0, le=3_600_000)


async def get_scenarios(request: Request) -> Response:
    return JSONResponse(_state(request).scenarios.to_json())


async def set_scenarios(request: Request) -> Response:
    state = _state(request)
    try:
        body = ScenariosRequest.model_validate(await _json_body(request))
    except (ValueError, ValidationError) as exc:
        return _bad_request(str(exc) if isinstance(exc, ValidationError) else "body is not valid JSON")
    state.scenarios.apply(body)
    return JSONResponse(state.scenarios.to_json())


async def get_groups(request: Request) -> Response:
    """BULK containers, oldest first: cards, state, operations per notification body sent."""
    state = _state(request)
    return JSONResponse({"windowMs": state.bulk.window_ms, "groups": state.bulk.groups()})


async def set_groups(request: Request) -> Response:
    state = _state(request)
    try:
        body = GroupsRequest.model_validate(await _json_body(request))
    except (ValueError, ValidationError) as exc:
        return _bad_request(str(exc) if isinstance(exc, ValidationError) else "body is not valid JSON")
    state.bulk.set_window(body.windowMs)
    return JSONResponse({"windowMs": state.bulk.window_ms, "groups": state.bulk.groups()})


async def reset(request: Request) -> Response:
    state = _state(request)
    try:
        body = ResetRequest.model_validate(await _json_body(request))
    except (ValueError, ValidationError):
        return _bad_request('body must be empty or {"orders": true|false}')
    await state.reset(forget_orders=body.orders)
    return JSONResponse({"reset": True, "orders": body.orders})


async def activate(request: Request) -> Response:
    """D1's Card Activation call to the issuer, with D1's retries; answers once it settled."""
    state = _state(request)
    try:
        body = ActivateRequest.model_validate(await _json_body(request))
    except (ValueError, ValidationError) as exc:
        return _bad_request(str(exc) if isinstance(exc, ValidationError) else "body is not valid JSON")
    call = await state.activator.activate(body.issuerId, body.cardId, trigger="admin", max_attempts=body.maxAttempts)
    return JSONResponse(call.to_json())


async def activations(request: Request) -> Response:
    return JSONResponse({"calls": [c.to_json() for c in _state(request).activator.calls]})


async def public_key(request: Request) -> Response:
    return JSONResponse(_state(request).encryption_keys.public_jwk)


async def get_keys(request: Request) -> Response:
    """The keyring without key material: kids, states (active / previous / retired), dates."""
    return JSONResponse(_state(request).encryption_keys.to_json())


async def rotate_keys(request: Request) -> Response:
    state = _state(request)
    try:
        body = RotateRequest.model_validate(await _json_body(request))
    except (ValueError, ValidationError):
        return _bad_request('body must be empty or {"retirePrevious": true|false}')
    state.encryption_keys.rotate(retire_previous=body.retirePrevious)
    return JSONResponse(state.encryption_keys.to_json())


async def retire_key(request: Request) -> Response:
    state = _state(request)
    try:
        body = RetireRequest.model_validate(await _json_body(request))
        state.encryption_keys.retire(body.kid)
    except KeyringError as exc:
        return _bad_request(str(exc))
    except (ValueError, ValidationError):
        return _bad_request('body must be {"kid": "<a previous key\'s kid>"}')
    return JSONResponse(state.encryption_keys.to_json())


async def tracking(request: Request) -> Response:
    """Tracking hub operations (current state of each), oldest first; ``?cardId=`` for one card."""
    card_id = request.query_params.get("cardId")
    ops = _state(request).tracking.all()
    return JSONResponse({"tracking": [t.snapshot() for t in ops if card_id is None or t.card_id == card_id]})


def health_routes() -> list[BaseRoute]:
    return [Route(f"{PREFIX}/health", health, methods=["GET"])]


def admin_routes() -> list[BaseRoute]:
    return [
        Route(f"{PREFIX}/stats", stats, methods=["GET"]),
        Route(f"{PREFIX}/faults", get_faults, methods=["GET"]),
        Route(f"{PREFIX}/faults", set_faults, methods=["POST"]),
        Route(f"{PREFIX}/holds", get_holds, methods=["GET"]),
        Route(f"{PREFIX}/holds/release", release_holds, methods=["POST"]),
        Route(f"{PREFIX}/captured", captured, methods=["GET"]),
        Route(f"{PREFIX}/orders", orders, methods=["GET"]),
        Route(f"{PREFIX}/scenarios", get_scenarios, methods=["GET"]),
        Route(f"{PREFIX}/scenarios", set_scenarios, methods=["POST"]),
        Route(f"{PREFIX}/groups", get_groups, methods=["GET"]),
        Route(f"{PREFIX}/groups", set_groups, methods=["POST"]),
        Route(f"{PREFIX}/reset", reset, methods=["POST"]),
        Route(f"{PREFIX}/public-key", public_key, methods=["GET"]),
        Route(f"{PREFIX}/activate", activate, methods=["POST"]),
        Route(f"{PREFIX}/activations", activations, methods=["GET"]),
        Route(f"{PREFIX}/keys", get_keys, methods=["GET"]),
        Route(f"{PREFIX}/keys/rotate", rotate_keys, methods=["POST"]),
        Route(f"{PREFIX}/keys/retire", retire_key, methods=["POST"]),
        Route(f"{PREFIX}/tracking", tracking, methods=["GET"]),
    ]
