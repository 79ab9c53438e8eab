"""D1 access tokens (JWT-bearer grant, RFC 7523) cached per worker process.

D1 asks issuers not to fetch a token per call (docs/d1/auth.md §5), so one provider per process
caches the token until shortly before ``expires_in`` and lets exactly one caller fetch
while the others wait (single flight). The token lives only in this object's memory: it
is never an activity input or result, so it never reaches workflow history.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

import httpx
from jwcrypto import jwk, jwt

from d1.paths import JWT_BEARER_GRANT, TOKEN_PATH

log = logging.getLogger(__name__)

D1_MAX_ASSERTION_LIFETIME_S = 900


class TokenError(RuntimeError):
    def __init__(self, message: str, *, status: int | None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


def make_assertion(key: jwk.JWK, *, issuer_id: str, kid: str, lifetime_s: int, audience: str | None, now: float) -> str:
    """ES256 assertion: iss = sub = issuerId, exp at most 15 minutes ahead."""
    issued = int(now)
    claims: dict[str, object] = {
        "iss": issuer_id,
        "sub": issuer_id,
        "iat": issued,
        "exp": issued + min(lifetime_s, D1_MAX_ASSERTION_LIFETIME_S),
        "jti": uuid.uuid4().hex,
    }
    if audience:
        claims["aud"] = audience
    token = jwt.JWT(header={"alg": "ES256", "typ": "JWT", "kid": kid}, claims=json.dumps(claims))
    token.make_signed_token(key)
    return str(token.serialize())


@dataclass(repr=False, eq=False)  # no repr: it holds the signing key
class AccessTokenProvider:
    http: httpx.AsyncClient
    _: KW_ONLY
    authz_url: str
    issuer_id: str
    signing_key: jwk.JWK
    kid: str
    assertion_lifetime_s: int = 300
    audience: str | None = None
    refresh_margin_s: float = 60.0
    clock: Callable[[], float] = time.time
    _token: str | None = field(default=None, init=False)
    _refresh_at: float = field(default=0.0, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def get(self) -> str:
        async with self._lock:  # one caller fetches, the others wait for its token
            if self._token is None or self.clock() >= self._refresh_at:
                self._token, self._refresh_at = await self._fetch()
            return self._token

    def invalidate(self, token: str) -> None:
        """Drop a token D1 refused (401) so that the next ``get`` fetches a fresh one."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        """A fresh token and when to refresh it."""
        now = self.clock()
        assertion = make_assertion(
            self.signing_key,
            issuer_id=self.issuer_id,
            kid=self.kid,
            lifetime_s=self.assertion_lifetime_s,
            audience=self.audience,
            now=now,
        )
        try:
            resp = await self.http.post(
                self.authz_url.rstrip("/") + TOKEN_PATH,
                data={"grant_type": JWT_BEARER_GRANT, "assertion": assertion},
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise TokenError(f"token endpoint unreachable: {type(exc).__name__}", status=None, retryable=True) from None
        if resp.status_code != 200:
            retryable = resp.status_code >= 500 or resp.status_code == 429
            raise TokenError(
                f"token endpoint answered {resp.status_code}", status=resp.status_code, retryable=retryable
            )
        try:
            body = resp.json()
            value = str(body["access_token"])
            expires_in = float(body.get("expires_in") or D1_MAX_ASSERTION_LIFETIME_S)
        except (ValueError, KeyError, TypeError):
            raise TokenError("token endpoint answered without access_token", status=200, retryable=True) from None
        refresh_at = now + max(expires_in - self.refresh_margin_s, expires_in / 2)
        log.info("obtained D1 access token", extra={"expires_in": expires_in})
        return value, refresh_at
