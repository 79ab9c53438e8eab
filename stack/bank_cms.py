"""A stand-in for the bank's card management system (outside the product, like the emulator
is D1's): the endpoint the receiver forwards D1's Card Activation calls to (receiver/cms.py),
for the tests and ``make run``.

``POST /cards/{issuerId}/{cardId}/activate`` with ``Authorization: Bearer <token>``: 200
``{"reference": ...}`` the first time, the same answer for a repeat of the same
``Idempotency-Key`` (counted apart), 404 for a card listed in ``unknown``, 422 for one in
``refused``, 503 while ``down``. Run it with :func:`serving` (the tests; ``make run`` serves
it over HTTPS with the local PKI's server certificate: stack/__main__.py).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stack.local import LocalStack
from stack.servers import free_port, serve

PATH = "/cards/{issuerId}/{cardId}/activate"


@dataclass
class BankCms:
    token: str
    down: bool = False
    unknown: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    # (issuerId, cardId) -> reference, in the order activated
    activated: dict[tuple[str, str], str] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    repeats: int = 0

    def app(self) -> Starlette:
        return Starlette(routes=[Route(PATH, self._activate, methods=["POST"])])

    def url_template(self, base_url: str) -> str:
        """For RECEIVER_CMS_ACTIVATION_URL."""
        return base_url + PATH

    async def _activate(self, request: Request) -> Response:
        issuer_id, card_id = request.path_params["issuerId"], request.path_params["cardId"]
        self.calls.append(
            {
                "issuerId": issuer_id,
                "cardId": card_id,
                "idempotencyKey": request.headers.get("idempotency-key"),
                "body": await request.json(),
            }
        )
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if self.down:
            return JSONResponse({"error": "maintenance"}, status_code=503)
        if card_id in self.unknown:
            return JSONResponse({"error": "no such card"}, status_code=404)
        if card_id in self.refused:
            return JSONResponse({"error": "card blocked"}, status_code=422)
        key = (issuer_id, card_id)
        if key in self.activated:
            self.repeats += 1
        else:
            self.activated[key] = f"cms-{len(self.activated) + 1:06d}"
        return JSONResponse({"reference": self.activated[key]})


@asynccontextmanager
async def serving(cms: BankCms, port: int | None = None, **tls: Any) -> AsyncIterator[str]:
    """The stand-in on a loopback port (HTTPS with uvicorn's ``ssl_*`` options); yields its base URL."""
    async with serve(cms.app(), port=port, **tls) as url:
        yield url


@asynccontextmanager
async def bank_cms_for(stack: LocalStack) -> AsyncIterator[dict[str, str]]:
    """``make run``'s bank CMS: the stand-in on a free loopback port (HTTPS with the local CA's
    server certificate when the stack runs mutual TLS); yields the receiver's RECEIVER_CMS_* variables."""
    token = secrets.token_urlsafe(24)
    token_file = stack.paths.state_dir / "bank-cms-token"
    token_file.write_text(token, encoding="utf-8")
    token_file.chmod(0o600)
    cms = BankCms(token=token)
    pki = stack.pki
    tls = {"ssl_certfile": str(pki.emulator_server.cert), "ssl_keyfile": str(pki.emulator_server.key)} if pki else {}
    async with serving(cms, free_port(), **tls) as url:
        variables = {"RECEIVER_CMS_ACTIVATION_URL": cms.url_template(url), "RECEIVER_CMS_TOKEN_FILE": str(token_file)}
        if pki is not None:
            variables["RECEIVER_CMS_CA_FILE"] = str(pki.ca_cert)
        print(f"serving a stand-in of the bank's CMS on {url} (D1's card activations end there)")
        yield variables
