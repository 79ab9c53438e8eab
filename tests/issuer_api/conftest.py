"""The issuer API on the test stack, over mutual TLS with OAuth bearer tokens: the app served in
the test's event loop (as tests/support/inprocess.py serves the receiver), in front of the
session's Temporal, worker and emulator. Clients present an issuer's certificate of a local CA
and a token of a local stand-in for the issuer's authorization server."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio

from issuer_api.app import create_app
from issuer_api.auth import CHANGE, READ, WEBHOOKS, WRITE
from issuer_api.tls import server_options
from security.pki import LocalPki, ensure_local_pki
from security.tls import client_ssl_context
from settings import IssuerApiSettings
from stack.servers import serve
from tests.conftest import ISSUER_ID, Stack
from tests.security.oidc_issuer import ISSUER, OidcIssuer

OTHER_ISSUER = "OTHERISS01"
AUDIENCE = "card-orders-api"
ALL_SCOPES = f"{WRITE} {READ} {CHANGE} {WEBHOOKS}"
CLIENT_ID = "core-banking"


@dataclass
class Api:
    url: str
    pki: LocalPki
    oauth: OidcIssuer
    stack: Stack
    settings: IssuerApiSettings

    def token(self, scope: str = ALL_SCOPES, **claims: Any) -> str:
        values: dict[str, Any] = {"aud": AUDIENCE, "scope": scope, "client_id": CLIENT_ID, "sub": "svc-7f3a"}
        return self.oauth.token(**{**values, **claims})

    def tls(self, issuer_id: str | None = ISSUER_ID) -> ssl.SSLContext:
        """A client context with the certificate of ``issuer_id`` (None: no certificate)."""
        if issuer_id is None:
            return client_ssl_context(ca_file=self.pki.ca_cert)
        pair = self.pki.issuer_client(issuer_id)
        return client_ssl_context(ca_file=self.pki.ca_cert, cert_file=pair.cert, key_file=pair.key)

    def client(
        self, issuer_id: str | None = ISSUER_ID, *, token: str | None = None, bearer: bool = True, timeout: float = 30
    ) -> httpx.AsyncClient:
        """``token`` None: a token with every scope; ``bearer=False``: no Authorization header."""
        headers = {"authorization": f"Bearer {token or self.token()}"} if bearer else {}
        return httpx.AsyncClient(base_url=self.url, verify=self.tls(issuer_id), headers=headers, timeout=timeout)

    def orders_path(self, issuer_id: str = ISSUER_ID) -> str:
        return f"/v1/issuers/{issuer_id}/card-orders"


def api_settings(pki: LocalPki, jwks: Path, **values: Any) -> IssuerApiSettings:
    base: dict[str, Any] = {
        "tls_cert_file": pki.receiver_server.cert,  # a CA-signed server certificate for 127.0.0.1
        "tls_key_file": pki.receiver_server.key,
        "tls_client_ca_file": pki.ca_cert,
        "oauth_issuer": ISSUER,
        "oauth_audience": AUDIENCE,
        "oauth_jwks_file": jwks,
    }
    return IssuerApiSettings(**{**base, **values})


@pytest_asyncio.fixture(scope="session")
async def api(stack: Stack) -> AsyncIterator[Api]:
    directory = stack.tmp / "issuer-api"
    directory.mkdir(exist_ok=True)
    pki = await asyncio.to_thread(ensure_local_pki, directory / "pki", [ISSUER_ID, OTHER_ISSUER])
    oauth = OidcIssuer()
    settings = api_settings(pki, oauth.write_jwks(directory / "jwks.json"), page_size=5, max_batch_orders=20)
    # Webhook endpoints on loopback allowed: the tests' consumers listen there.
    app = create_app(stack.orders, settings, events=stack.local.events_settings())
    async with serve(app, port=0, host="127.0.0.1", **server_options(settings)) as url:
        yield Api(url=url, pki=pki, oauth=oauth, stack=stack, settings=settings)
