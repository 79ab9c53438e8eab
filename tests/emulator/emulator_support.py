"""Helpers for the emulator tests: receiver stub, issuer keys, assertions, order bodies.

A plain module (not conftest) so test files can import it by name.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from jwcrypto import jwe, jwk, jwt
from starlette.requests import Request
from starlette.responses import Response

from d1.paths import JWT_BEARER_GRANT, batch_order_path, order_path, status_path, track_card_path
from emulator.state import EmulatorState

ISSUER_ID = "TESTISS001"
OTHER_ISSUER_ID = "OTHERISS02"
ISSUER_KID = "issuer-auth-key-test"
OTHER_KID = "other-issuer-key-test"
TEST_PAN = "4111111111111111"
FAST_STEP_MS = 20


@dataclass
class ReceiverStub:
    """Collects notification bodies; can fail the first N calls with a given status."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    correlation_ids: list[str | None] = field(default_factory=list)
    fail_first: int = 0
    fail_status: int = 500
    calls: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: Request) -> Response:
        self.calls += 1
        if self.fail_first > 0:
            self.fail_first -= 1
            return Response(status_code=self.fail_status)
        body = json.loads(await request.body())
        async with self.changed:
            self.bodies.append(body)
            self.paths.append(request.url.path)
            self.correlation_ids.append(request.headers.get("x-correlation-id"))
            self.changed.notify_all()
        return Response(status_code=204)

    def operations(self) -> list[dict[str, Any]]:
        return [op for body in self.bodies for op in body["operations"]]

    async def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: predicate(self.operations()))


@dataclass
class Emulator:
    base_url: str
    state: EmulatorState
    client: httpx.AsyncClient
    receiver: ReceiverStub
    issuer_key: jwk.JWK
    other_key: jwk.JWK
    encryption_public: jwk.JWK
    tmp_path: Path

    async def token(self, issuer_id: str = ISSUER_ID, key: jwk.JWK | None = None) -> str:
        response = await self.client.post(
            "/authz/v1/oauth2/token",
            data={"grant_type": JWT_BEARER_GRANT, "assertion": make_assertion(key or self.issuer_key, issuer_id)},
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def order(
        self,
        token: str,
        card_id: str = "card-0001",
        body: dict[str, Any] | None = None,
        issuer_id: str = ISSUER_ID,
        path: str | None = None,
    ) -> httpx.Response:
        return await self.client.post(
            path or "/banking/v1" + order_path(issuer_id, card_id),
            json=body if body is not None else self.order_body(),
            headers={"authorization": f"Bearer {token}"},
        )

    async def batch(
        self, token: str, body: Any, issuer_id: str = ISSUER_ID, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.client.post(
            "/banking/v1" + batch_order_path(issuer_id),
            json=body,
            headers={"authorization": f"Bearer {token}", **(headers or {})},
        )

    async def track(
        self,
        token: str,
        body: Any,
        card_id: str = "card-0001",
        issuer_id: str = ISSUER_ID,
        correlation_id: str | None = None,
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"}
        if correlation_id:
            headers["x-correlation-id"] = correlation_id
        return await self.client.post("/banking/v1" + track_card_path(issuer_id, card_id), json=body, headers=headers)

    async def status(self, token: str, card_id: str = "card-0001", issuer_id: str = ISSUER_ID) -> httpx.Response:
        return await self.client.get(
            "/banking/v1" + status_path(issuer_id, card_id), headers={"authorization": f"Bearer {token}"}
        )

    async def stats(self) -> dict[str, Any]:
        response = await self.client.get("/_emulator/stats")
        assert response.status_code == 200
        stats: dict[str, Any] = response.json()
        return stats

    async def faults(self, **faults: Any) -> None:
        response = await self.client.post("/_emulator/faults", json=faults)
        assert response.status_code == 200, response.text

    def encrypt(self, plaintext: dict[str, Any], kid: str | None = None) -> str:
        header = {"alg": "ECDH-ES", "enc": "A256GCM", "kid": kid or self.encryption_public["kid"]}
        token = jwe.JWE(json.dumps(plaintext).encode(), protected=json.dumps(header))
        token.add_recipient(self.encryption_public)
        result: str = token.serialize(compact=True)
        return result

    def batch_item(self, card_id: str, issuer_request_id: str | None = "req-0001", **card: Any) -> dict[str, Any]:
        """One card of a batch body: the single order's members plus cardId."""
        item = {"cardId": card_id, **self.order_body(issuer_request_id or "unused", **card)}
        if issuer_request_id is None:
            del item["issuerRequestId"]
        return item

    def order_body(self, issuer_request_id: str = "req-0001", **card: Any) -> dict[str, Any]:
        plaintext = {"pan": TEST_PAN, "exp": "2906", "name": "JANE SAMPLE", "cvv2": "123", **card}
        return {
            "distributionChannel": "THALES",
            "cardProductId": "DEMO_VISA_DEBIT_01",
            "consumerId": "cust-0001",
            "issuerRequestId": issuer_request_id,
            "services": {"issuance": "CREATION", "delivery": "usps-imb"},
            "encryptedData": self.encrypt(plaintext),
            "paymentApplication": {"config": "DEMO_VIS163", "odaKeyIndex": "01", "derivationKeyIndex": "01"},
            "shipment": {
                "type": "INDIVIDUAL",
                "deliveryAddress": {
                    "firstName": "Jane",
                    "lastName": "Sample",
                    "line1": "10 Main St",
                    "city": "New York",
                    "zipCode": "10001",
                    "countryCode": "US",
                },
            },
        }

    async def wait_status(
        self, token: str, predicate: Callable[[dict[str, Any]], bool], card_id: str = "card-0001", timeout: float = 5.0
    ) -> dict[str, Any]:
        """Poll productionStatus until ``predicate(operation)`` holds."""
        async with asyncio.timeout(timeout):
            while True:
                response = await self.status(token, card_id)
                if response.status_code == 200:
                    op: dict[str, Any] = response.json()["operations"][0]
                    if predicate(op):
                        return op
                await asyncio.sleep(0.01)


def make_key(kid: str) -> jwk.JWK:
    return jwk.JWK.generate(kty="EC", crv="P-256", kid=kid)


def make_assertion(
    key: jwk.JWK,
    issuer_id: str = ISSUER_ID,
    *,
    sub: str | None = None,
    exp_in: int = 300,
    alg: str = "ES256",
    kid: str | None = None,
) -> str:
    now = int(time.time())
    header = {"alg": alg, "typ": "JWT", "kid": kid if kid is not None else key["kid"]}
    claims = {
        "iss": issuer_id,
        "sub": sub if sub is not None else issuer_id,
        "iat": now,
        "exp": now + exp_in,
        "aud": "https://api.d1.thalescloud.io",
    }
    token = jwt.JWT(header=header, claims=claims)
    token.make_signed_token(key)
    result: str = token.serialize()
    return result


def write_jwks(path: Path, *entries: tuple[jwk.JWK, str | None]) -> None:
    keys = []
    for key, issuer_id in entries:
        public = key.export_public(as_dict=True)
        if issuer_id is not None:
            public["issuerId"] = issuer_id
        keys.append(public)
    path.write_text(json.dumps({"keys": keys}))


REPO_ROOT = Path(__file__).resolve().parents[2]


def write_program(path: Path, **interface: Any) -> Path:
    """The sample program (config/program.json) with some interface members overridden."""
    program = json.loads((REPO_ROOT / "config" / "program.json").read_text())
    program["interface"] = {**program.get("interface", {}), **interface}
    path.write_text(json.dumps(program))
    return path


def shipment_status(op: dict[str, Any]) -> str | None:
    status: str | None = (op["details"].get("shipment") or {}).get("status")
    return status
