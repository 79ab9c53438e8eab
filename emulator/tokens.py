"""The OAuth2 JWT-bearer token endpoint (D1's OAuth2 API) and bearer-token checks.

D1 issues access tokens against an ES256-signed assertion whose ``kid`` names a public key
registered at onboarding. The emulator follows the documented checks (alg, kid, signature,
``iss == sub == issuerId``, ``exp`` at most 15 minutes ahead) and hands out opaque random
tokens that it remembers together with the issuer they were issued to.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from jwcrypto import jws
from jwcrypto.common import base64url_decode

from d1.paths import JWT_BEARER_GRANT
from emulator.error_codes import D1Error, ErrorCode
from emulator.issuer_keys import IssuerKeyRegistry

MAX_ASSERTION_LIFETIME_S = 900  # D1: exp at most now + 15 minutes
CLOCK_SKEW_S = 30
GRANTED_SCOPE = "d1-api:physical-issuance"
MAX_ASSERTION_CHARS = 8192


@dataclass(frozen=True)
class IssuedToken:
    issuer_id: str
    expires_at: float


def _invalid_request(reason: str) -> D1Error:
    return D1Error(ErrorCode.INVALID_REQUEST, reason)


def _invalid_grant(reason: str) -> D1Error:
    return D1Error(ErrorCode.INVALID_GRANT, reason)


def parse_token_request(content_type: str, body: bytes) -> tuple[str, str]:
    """Return (grant_type, assertion) from a form-urlencoded or JSON body."""
    fields: Mapping[str, Any]
    if content_type.split(";", 1)[0].strip().lower() == "application/json":
        try:
            parsed = json.loads(body or b"null")
        except ValueError:
            raise _invalid_request("body is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise _invalid_request("body must be a JSON object")
        fields = parsed
    else:
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise _invalid_request("body is not UTF-8") from None
        fields = {name: values[0] for name, values in form.items() if len(values) == 1}
        if any(len(values) > 1 for values in form.values()):
            raise _invalid_request("a parameter is repeated")
    grant_type = fields.get("grant_type")
    assertion = fields.get("assertion")
    if not isinstance(grant_type, str) or not grant_type:
        raise _invalid_request("grant_type: missing")
    if grant_type != JWT_BEARER_GRANT:
        raise _invalid_request("grant_type: unsupported grant type")
    if not isinstance(assertion, str) or not assertion:
        raise _invalid_request("assertion: missing")
    if len(assertion) > MAX_ASSERTION_CHARS:
        raise _invalid_request("assertion: too long")
    return grant_type, assertion


def _decode_segment(segment: str) -> Any:
    try:
        return json.loads(base64url_decode(segment))
    except (ValueError, TypeError):
        return None


def _int_claim(claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


class TokenService:
    """Verifies assertions, issues tokens and resolves bearer tokens to issuers."""

    def __init__(self, registry: IssuerKeyRegistry, lifetime_s: int, clock: Callable[[], float] = time.time) -> None:
        self._registry = registry
        self._lifetime_s = lifetime_s
        self._clock = clock
        self._tokens: dict[str, IssuedToken] = {}

    def verify_assertion(self, assertion: str) -> str:
        """Check the assertion; return the issuerId it proves. Raises :class:`D1Error`."""
        parts = assertion.split(".")
        if len(parts) != 3:
            raise _invalid_request("assertion: not a compact JWS")
        header = _decode_segment(parts[0])
        if not isinstance(header, dict):
            raise _invalid_request("assertion: header is not a JSON object")
        if header.get("alg") != "ES256":
            raise _invalid_request("assertion: alg must be ES256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid_request("assertion: kid missing")
        registered = self._registry.lookup(kid)
        if registered is None:
            raise _invalid_grant("assertion: unknown kid")
        token = jws.JWS()
        try:
            token.deserialize(assertion)
            token.verify(registered.key, alg="ES256")
        except Exception:  # jwcrypto raises several types; the reason is the same for us
            raise _invalid_grant("assertion: signature verification failed") from None
        claims = _decode_segment(parts[1])
        if not isinstance(claims, dict):
            raise _invalid_grant("assertion: claims are not a JSON object")
        iss, sub = claims.get("iss"), claims.get("sub")
        if not isinstance(iss, str) or not isinstance(sub, str):
            raise _invalid_grant("assertion: iss and sub are required")
        if iss != sub:
            raise _invalid_grant("assertion: iss and sub must be equal")
        if registered.issuer_id is not None:
            if iss != registered.issuer_id:
                raise _invalid_grant("assertion: iss is not the issuer this key is registered for")
        elif len(iss) != 10:
            raise _invalid_grant("assertion: iss must be a 10-character issuerId")
        now = self._clock()
        exp = _int_claim(claims, "exp")
        if exp is None:
            raise _invalid_grant("assertion: exp is required (integer seconds)")
        if exp <= now - CLOCK_SKEW_S:
            raise _invalid_grant("assertion: expired")
        if exp > now + MAX_ASSERTION_LIFETIME_S + CLOCK_SKEW_S:
            raise _invalid_grant("assertion: exp is more than 15 minutes ahead")
        iat = _int_claim(claims, "iat")
        if "iat" in claims and (iat is None or iat > now + CLOCK_SKEW_S):
            raise _invalid_grant("assertion: iat is invalid or in the future")
        return iss

    def issue(self, issuer_id: str) -> dict[str, Any]:
        """Mint an opaque token for ``issuer_id``; return the 200 response body."""
        now = self._clock()
        self._tokens = {t: rec for t, rec in self._tokens.items() if rec.expires_at > now}
        token = secrets.token_urlsafe(32)
        self._tokens[token] = IssuedToken(issuer_id=issuer_id, expires_at=now + self._lifetime_s)
        return {"access_token": token, "expires_in": self._lifetime_s, "token_type": "Bearer", "scope": GRANTED_SCOPE}

    def authenticate(self, authorization: str | None) -> str:
        """Resolve an ``Authorization: Bearer`` header to its issuerId, else 401."""
        if not authorization:
            raise D1Error(ErrorCode.AUTHORIZER_UNAUTHORIZED)
        scheme, _, token = authorization.partition(" ")
        record = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if record is None or record.expires_at <= self._clock():
            raise D1Error(ErrorCode.AUTHORIZER_UNAUTHORIZED)
        return record.issuer_id

    def authorize(self, authorization: str | None, path_issuer_id: str) -> str:
        """401 without a valid token, 403 when the token belongs to another issuer."""
        issuer_id = self.authenticate(authorization)
        if issuer_id != path_issuer_id:
            raise D1Error(ErrorCode.FORBIDDEN)
        return issuer_id
