"""A D1 emulator of its own for the contract tests (no Temporal): real HTTP, real JWE, real
tokens. Notifications are captured, not sent, and production is paused (long steps), so
accepted orders stay put and cost nothing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from jwcrypto import jwe, jwk, jwt

from d1.paths import JWT_BEARER_GRANT, order_path, pull_and_change_path, status_path
from emulator.app import create_app
from emulator.config import EmulatorSettings
from emulator.state import EmulatorState
from emulator.testing import run_emulator
from stack.onboarding import ensure_issuer_keys

ISSUER_ID = "TESTISS001"


@dataclass
class D1:
    """The contract emulator and what a client needs to talk to it."""

    client: httpx.AsyncClient
    state: EmulatorState
    signing_key: jwk.JWK
    encryption_key: jwk.JWK
    _token: str | None = None

    async def token(self) -> str:
        if self._token is None:
            now = int(time.time())
            assertion = jwt.JWT(
                header={"alg": "ES256", "typ": "JWT", "kid": self.signing_key["kid"]},
                claims={"iss": ISSUER_ID, "sub": ISSUER_ID, "iat": now, "exp": now + 600},
            )
            assertion.make_signed_token(self.signing_key)
            resp = await self.client.post(
                "/authz/v1/oauth2/token", data={"grant_type": JWT_BEARER_GRANT, "assertion": assertion.serialize()}
            )
            assert resp.status_code == 200, resp.text
            self._token = resp.json()["access_token"]
        assert self._token is not None
        return self._token

    def encrypt(self, plaintext: dict[str, Any]) -> str:
        header = {"alg": "ECDH-ES", "enc": "A256GCM", "kid": self.encryption_key["kid"]}
        token = jwe.JWE(json.dumps(plaintext).encode(), protected=json.dumps(header))
        token.add_recipient(self.encryption_key)
        result: str = token.serialize(compact=True)
        return result

    def d1_request(self, order: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(cardId, D1 body) from an issuer's order: card data and tracks go into the JWE."""
        body = {k: v for k, v in order.items() if k not in ("issuerId", "cardId", "cardData", "trackData")}
        plaintext = dict(order.get("cardData") or {})
        if "trackData" in order:
            plaintext["trackData"] = order["trackData"]
        body["encryptedData"] = self.encrypt(plaintext)
        return order["cardId"], body

    async def order(
        self, card_id: str, body: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.client.post(
            "/banking/v1" + order_path(ISSUER_ID, card_id),
            json=body,
            headers={"authorization": f"Bearer {await self.token()}", **(headers or {})},
        )

    async def status(self, card_id: str) -> httpx.Response:
        return await self.client.get(
            "/banking/v1" + status_path(ISSUER_ID, card_id), headers={"authorization": f"Bearer {await self.token()}"}
        )

    async def pull_and_change(
        self, card_id: str, body: dict[str, Any], *, correlation_id: str | None = None
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {await self.token()}"}
        if correlation_id:
            headers["x-correlation-id"] = correlation_id
        return await self.client.post(
            "/banking/v1" + pull_and_change_path(ISSUER_ID, card_id), json=body, headers=headers
        )

    async def admin(self, method: str, path: str, **kw: Any) -> Any:
        resp = await self.client.request(method, "/_emulator" + path, **kw)
        assert resp.status_code == 200, resp.text
        return resp.json()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture(scope="session")
async def d1(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[D1]:
    tmp: Path = tmp_path_factory.mktemp("contract-d1")
    signing_key_file, jwks = ensure_issuer_keys(tmp / "issuer", ISSUER_ID)
    settings = EmulatorSettings(
        state_dir=tmp / "emulator",
        issuer_keys_file=jwks,
        receiver_url="http://127.0.0.1:9",
        notification_mode="capture",
        step_delay_ms=60_000,
        # The contract tests read counters and add scenarios through the sandbox admin API.
        admin_api_enabled=True,
    )
    app = create_app(settings)
    state: EmulatorState = app.state.emulator
    async with run_emulator(settings, app=app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        yield D1(
            client=http,
            state=state,
            signing_key=jwk.JWK.from_json(signing_key_file.read_text()),
            encryption_key=jwk.JWK(**state.encryption_keys.public_jwk),
        )
