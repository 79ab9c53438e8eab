"""Fixtures: a real emulator server and a real receiver stub, both on loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from emulator_support import (
    FAST_STEP_MS,
    ISSUER_ID,
    ISSUER_KID,
    OTHER_ISSUER_ID,
    OTHER_KID,
    Emulator,
    ReceiverStub,
    make_key,
    write_jwks,
)
from jwcrypto import jwk
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.app import create_app
from emulator.config import EmulatorSettings
from emulator.state import EmulatorState
from emulator.testing import run_emulator, serve_app


@dataclass
class _ReceiverServer:
    url: str
    stub: ReceiverStub

    async def handle(self, request: Request) -> Response:
        return await self.stub.handle(request)


@pytest.fixture(scope="session")
async def _receiver_server() -> AsyncIterator[_ReceiverServer]:
    """One receiver HTTP server for the session (saves a server start/stop per test)."""
    server = _ReceiverServer(url="", stub=ReceiverStub())
    app = Starlette(routes=[Route("/notifications/d1/v2/issuers/{issuerId}/cards", server.handle, methods=["POST"])])
    async with serve_app(app) as url:
        server.url = url
        yield server


@pytest.fixture
def receiver(_receiver_server: _ReceiverServer) -> tuple[ReceiverStub, str]:
    """A fresh notification collector per test, behind the shared receiver server."""
    _receiver_server.stub = ReceiverStub()
    return _receiver_server.stub, _receiver_server.url


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., EmulatorSettings]:
    def make(receiver_url: str, **overrides: Any) -> EmulatorSettings:
        values: dict[str, Any] = {
            "state_dir": tmp_path / "state",
            "issuer_keys_file": tmp_path / "issuer-keys.json",
            "receiver_url": receiver_url,
            "step_delay_ms": FAST_STEP_MS,
            "notify_retry_base_ms": 10,
            "notify_retry_cap_ms": 50,
            "notify_timeout_s": 2.0,
            # The tests read counters and set faults through the sandbox admin API.
            "admin_api_enabled": True,
        }
        values.update(overrides)
        return EmulatorSettings(**values)

    return make


@pytest.fixture
async def emulator_factory(
    tmp_path: Path, receiver: tuple[ReceiverStub, str], settings_factory: Callable[..., EmulatorSettings]
) -> AsyncIterator[Callable[..., Any]]:
    stub, receiver_url = receiver
    issuer_key, other_key = make_key(ISSUER_KID), make_key(OTHER_KID)
    write_jwks(tmp_path / "issuer-keys.json", (issuer_key, ISSUER_ID), (other_key, OTHER_ISSUER_ID))
    stack: list[Any] = []

    async def start(**overrides: Any) -> Emulator:
        settings = settings_factory(**{"receiver_url": receiver_url, **overrides})
        app = create_app(settings)
        cm = run_emulator(settings, app=app)
        base_url = await cm.__aenter__()
        stack.append(cm)
        client = httpx.AsyncClient(base_url=base_url, timeout=5.0)
        stack.append(client)
        state: EmulatorState = app.state.emulator
        return Emulator(
            base_url=base_url,
            state=state,
            client=client,
            receiver=stub,
            issuer_key=issuer_key,
            other_key=other_key,
            encryption_public=jwk.JWK(**state.encryption_keys.public_jwk),
            tmp_path=tmp_path,
        )

    yield start
    for item in reversed(stack):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            await item.__aexit__(None, None, None)


@pytest.fixture
async def emu(emulator_factory: Callable[..., Any]) -> Emulator:
    emulator: Emulator = await emulator_factory()
    return emulator
