"""A local stand-in for the operators' OIDC issuer: signing keys, a JWKS file, access tokens.

Tokens are made the way an identity provider makes them (jwcrypto JWT/JWS), plus the
forgeries the codec server must refuse: unsigned (``alg: none``) and HMAC "signed" with the
issuer's public key.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jwcrypto import jwk, jwt

ISSUER = "https://sso.bank.test/realms/operators"
AUDIENCE = "temporal-ui"
PII_ROLE = "card-orders-pii"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class OidcIssuer:
    keys: list[jwk.JWK] = field(
        default_factory=lambda: [
            jwk.JWK.generate(kty="EC", crv="P-256", kid="sso-ec-1"),
            jwk.JWK.generate(kty="RSA", size=2048, kid="sso-rsa-1"),
        ]
    )

    @property
    def ec(self) -> jwk.JWK:
        return self.keys[0]

    @property
    def rsa(self) -> jwk.JWK:
        return self.keys[1]

    def jwks(self, keys: list[jwk.JWK] | None = None) -> dict[str, Any]:
        return {"keys": [k.export_public(as_dict=True) for k in (keys or self.keys)]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "operator-7f3a",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "preferred_username": "alice",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self, key: jwk.JWK | None = None, *, alg: str | None = None, kid: str | None = None, **claims: Any
    ) -> str:
        key = key or self.ec
        alg = alg or ("ES256" if key["kty"] == "EC" else "RS256")
        header = {"alg": alg, "typ": "at+jwt"}
        kid = key["kid"] if kid is None else kid
        if kid:  # kid="" leaves it out
            header["kid"] = kid
        token = jwt.JWT(header=header, claims=self.claims(**claims))
        token.make_signed_token(key)
        result: str = token.serialize()
        return result

    def unsigned(self, **claims: Any) -> str:
        header = {"alg": "none", "typ": "JWT", "kid": self.ec["kid"]}
        return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(self.claims(**claims)).encode())}."

    def hs256_with_public_key(self, **claims: Any) -> str:
        """The algorithm-confusion forgery: HMAC keyed with the issuer's *public* key (PEM)."""
        secret = jwk.JWK(kty="oct", k=_b64(self.rsa.export_to_pem()))
        header = {"alg": "HS256", "typ": "JWT", "kid": self.rsa["kid"]}
        token = jwt.JWT(header=header, claims=self.claims(**claims))
        token.make_signed_token(secret)
        result: str = token.serialize()
        return result
