"""The issuer API in the local stack: a stand-in for the bank's authorization server (a signing key
and its JWKS, made once) and the demo's access token, written under ``.state/issuer-api/``
(docs/issuer-api.md, "Trying it with make run")."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from jwcrypto import jwk, jwt

from security.secret_files import write_file_atomically, write_secret

ISSUER = "https://auth.local.invalid/"  # the local authorization server's name; nothing listens there
AUDIENCE = "card-orders-api"
SCOPES = "card-orders:write card-orders:read card-orders:change card-orders:webhooks"
DEMO_CLIENT = "make-run-demo"
TOKEN_LIFETIME_S = 12 * 3600


@dataclass(frozen=True)
class ApiAuthFiles:
    directory: Path

    @property
    def signing_key(self) -> Path:
        return self.directory / "auth-signing-key.jwk"

    @property
    def jwks(self) -> Path:
        return self.directory / "auth-jwks.json"

    @property
    def demo_token(self) -> Path:
        return self.directory / "demo-token"

    def ensure(self, issuer_id: str) -> None:
        """The key pair (kept), and a fresh demo token for ``issuer_id`` with every scope."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.signing_key.exists():
            key = jwk.JWK.generate(kty="EC", crv="P-256", kid=f"local-auth-{uuid.uuid4().hex[:8]}", use="sig")
            write_secret(self.signing_key, key.export_private())
        key = jwk.JWK.from_json(self.signing_key.read_text())
        jwks = {"keys": [key.export_public(as_dict=True)]}
        write_file_atomically(self.jwks, json.dumps(jwks).encode(), 0o644)
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": DEMO_CLIENT,
            "client_id": DEMO_CLIENT,
            "scope": SCOPES,
            "issuer_ids": [issuer_id],
            "iat": now,
            "exp": now + TOKEN_LIFETIME_S,
        }
        token = jwt.JWT(header={"alg": "ES256", "kid": key["kid"], "typ": "at+jwt"}, claims=claims)
        token.make_signed_token(key)
        write_secret(self.demo_token, token.serialize())
