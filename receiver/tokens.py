"""The receiver's outbound-OAuth access tokens: self-contained, HMAC-signed with a key derived
from the client secret, bound to client, scope and issuer (docs/security.md, "Outbound OAuth").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_TOKEN_PREFIX = "v1"  # noqa: S105 - token format version
_KDF_INFO = b"d1-receiver-outbound-oauth-token-v1"
# v1.<base64url claims>.<base64url HMAC-SHA256, 43 characters>; ASCII only by construction.
_TOKEN_SHAPE = re.compile(r"v1\.[A-Za-z0-9_-]{1,2048}\.[A-Za-z0-9_-]{43}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenClaims:
    scope: frozenset[str]
    issuer_id: str | None


class TokenIssuer:
    """Stateless. ``scope``: what the client is granted (space-separated, RFC 6749 §3.3)."""

    def __init__(
        self, client_id: str, client_secret: str, *, scope: str, lifetime_s: int, clock: Callable[[], float] = time.time
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("outbound OAuth needs a client id and a client secret")
        self.client_id = client_id
        self._secret_digest = hashlib.sha256(client_secret.encode("utf-8")).digest()
        self._id_digest = hashlib.sha256(client_id.encode("utf-8")).digest()
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO).derive(
            client_secret.encode("utf-8")
        )
        self.scope = scope
        self.granted = frozenset(scope.split())
        if not self.granted:
            raise ValueError("outbound OAuth needs at least one scope to grant")
        self.lifetime_s = lifetime_s
        self._clock = clock

    def client_matches(self, client_id: str, client_secret: str) -> bool:
        # Constant time for both parts: no early exit on the id.
        id_ok = hmac.compare_digest(hashlib.sha256(client_id.encode("utf-8")).digest(), self._id_digest)
        secret_ok = hmac.compare_digest(hashlib.sha256(client_secret.encode("utf-8")).digest(), self._secret_digest)
        return id_ok and secret_ok

    def grant(self, requested: str) -> frozenset[str] | None:
        """None when it asked for anything not granted to this client."""
        wanted = frozenset(requested.split())
        if not wanted:
            return self.granted
        return wanted if wanted <= self.granted else None

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, f"{_TOKEN_PREFIX}.{body}".encode("ascii"), hashlib.sha256).digest())

    def mint(self, *, scope: Iterable[str] | None = None, issuer_id: str | None = None) -> dict[str, object]:
        """RFC 6749 §5.1, with D1's ``expires_at``. ``expires_in`` is a *string* of seconds:
        D1's published outbound token spec types it so."""
        granted = self.granted if scope is None else frozenset(scope)
        scope_text = " ".join(sorted(granted))
        now = int(self._clock())
        exp = now + self.lifetime_s
        claims: dict[str, object] = {
            "sub": self.client_id,
            "client_id": self.client_id,
            "scope": scope_text,
            "iat": now,
            "exp": exp,
            "jti": secrets.token_hex(8),
        }
        if issuer_id is not None:
            # The D1 issuerId the token may notify for (not "iss", which would name us).
            claims["issuer_id"] = issuer_id
        body = _b64(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        return {
            "access_token": f"{_TOKEN_PREFIX}.{body}.{self._sign(body)}",
            "token_type": "Bearer",
            "expires_in": str(self.lifetime_s),
            "scope": scope_text,
            "expires_at": datetime.fromtimestamp(exp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }

    def verify(self, token: str) -> TokenClaims | None:
        """None unless genuine, unexpired and of this client (never raises)."""
        if not _TOKEN_SHAPE.fullmatch(token):
            return None
        _, body, signature = token.split(".")
        # Compared as text (ASCII by the shape check): one valid spelling per signature.
        if not hmac.compare_digest(self._sign(body).encode("ascii"), signature.encode("ascii")):
            return None
        try:
            claims = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(claims, dict):
            return None
        exp, scope, issuer_id = claims.get("exp"), claims.get("scope"), claims.get("issuer_id")
        if not (
            isinstance(exp, int)
            and exp > self._clock()
            and claims.get("sub") == self.client_id
            and claims.get("client_id") == self.client_id
            and isinstance(scope, str)
            and (issuer_id is None or isinstance(issuer_id, str))
        ):
            return None
        return TokenClaims(scope=frozenset(scope.split()), issuer_id=issuer_id)
