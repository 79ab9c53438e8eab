"""Who may post D1 notifications to the receiver (auth.md §1 and §5).

* **mutual TLS, always** (unless the loudly logged development flag is on): the TLS layer
  refuses a connection without a client certificate chaining to the configured CA; here
  the certificate's identity must also match the issuer in the path
  (``RECEIVER_TLS_CLIENT_IDENTITY``, default ``urn:d1:notifier:{issuerId}``), so a
  certificate issued for another tenant, or an issuer's own D1 client certificate,
  cannot post notifications for this issuer (403);
* **outbound OAuth, when the D1 tenant option is on**: the receiver hosts the
  client-credentials token endpoint D1 calls (``POST /oauth2/token``, HTTP Basic,
  ``application/x-www-form-urlencoded``, RFC 6749 §4.4) and every notification must carry
  one of its bearer tokens (401 otherwise).

Tokens are self-contained (``v1.<claims>.<HMAC-SHA256>``) with a key derived from the
client secret, so any number of stateless receiver replicas accept each other's tokens
and rotating the client secret revokes every token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from security.secret_files import read_secret
from security.tls import identity_matches, peer_identity
from settings import ReceiverSettings

log = logging.getLogger("receiver.auth")

TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path, not a secret
CLIENT_CREDENTIALS = "client_credentials"
FORM = "application/x-www-form-urlencoded"
MAX_TOKEN_REQUEST_BYTES = 4096
_TOKEN_PREFIX = "v1"  # noqa: S105 - token format version
_KDF_INFO = b"d1-receiver-outbound-oauth-token-v1"
_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Client-credentials tokens for one OAuth client (D1): mint and verify, no state."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        scope: str,
        lifetime_s: int,
        clock: Callable[[], float] = time.time,
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
        self.lifetime_s = lifetime_s
        self._clock = clock

    def client_matches(self, client_id: str, client_secret: str) -> bool:
        """Constant-time comparison of both parts (no early exit on the id)."""
        id_ok = hmac.compare_digest(hashlib.sha256(client_id.encode("utf-8")).digest(), self._id_digest)
        secret_ok = hmac.compare_digest(
            hashlib.sha256(client_secret.encode("utf-8")).digest(), self._secret_digest
        )
        return id_ok and secret_ok

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, f"{_TOKEN_PREFIX}.{body}".encode("ascii"), hashlib.sha256).digest())

    def mint(self) -> dict[str, object]:
        now = int(self._clock())
        exp = now + self.lifetime_s
        claims = {"sub": self.client_id, "scope": self.scope, "iat": now, "exp": exp, "jti": secrets.token_hex(8)}
        body = _b64(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        return {
            "access_token": f"{_TOKEN_PREFIX}.{body}.{self._sign(body)}",
            "token_type": "Bearer",
            "expires_in": self.lifetime_s,
            "scope": self.scope,
            "expires_at": datetime.fromtimestamp(exp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }

    def verify(self, token: str) -> bool:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _TOKEN_PREFIX:
            return False
        if not hmac.compare_digest(self._sign(parts[1]), parts[2]):
            return False
        try:
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error):
            return False
        exp = claims.get("exp") if isinstance(claims, dict) else None
        return isinstance(exp, int) and exp > self._clock() and claims.get("sub") == self.client_id


def _oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers={**_NO_STORE, **(headers or {})}
    )


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, client_secret = decoded.partition(":")
    if not sep:
        return None
    return client_id, client_secret


class ReceiverAuth:
    """The receiver's authentication rules, built once from the settings."""

    def __init__(
        self,
        *,
        require_client_cert: bool,
        identity_template: str = "urn:d1:notifier:{issuerId}",
        oauth: TokenIssuer | None = None,
    ) -> None:
        self.require_client_cert = require_client_cert
        self.identity_template = identity_template
        self.oauth = oauth

    @classmethod
    def from_settings(cls, settings: ReceiverSettings) -> ReceiverAuth:
        oauth = None
        if settings.oauth_enabled:
            if not settings.oauth_client_id:
                raise ValueError("RECEIVER_OAUTH_ENABLED needs RECEIVER_OAUTH_CLIENT_ID")
            secret = read_secret(
                settings.oauth_client_secret_file, settings.oauth_client_secret, what="receiver OAuth client secret"
            )
            oauth = TokenIssuer(
                settings.oauth_client_id,
                secret,
                scope=settings.oauth_scope,
                lifetime_s=settings.oauth_token_lifetime_s,
            )
        tls = settings.tls_cert_file is not None and settings.tls_client_ca_file is not None
        return cls(require_client_cert=tls, identity_template=settings.tls_client_identity, oauth=oauth)

    def _client_problem(self, request: Request, issuer_id: str | None) -> Response | None:
        if not self.require_client_cert:
            return None
        identity = peer_identity(request.scope)
        if identity is None:
            # The TLS layer already demands a certificate; this catches a server run without
            # the protocol class that reports it (fail closed).
            return JSONResponse({"error": "a TLS client certificate is required"}, status_code=401)
        if not identity_matches(identity, self.identity_template, issuer_id):
            log.warning(
                "client certificate %r is not allowed to notify issuer %s",
                identity.subject,
                issuer_id if issuer_id is not None else "(any)",
            )
            return JSONResponse({"error": "the client certificate does not match this issuer"}, status_code=403)
        return None

    def check_notification(self, request: Request, issuer_id: str) -> Response | None:
        """None when the caller may post notifications for ``issuer_id``, else the refusal."""
        problem = self._client_problem(request, issuer_id)
        if problem is not None:
            return problem
        if self.oauth is not None:
            scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not self.oauth.verify(token.strip()):
                return JSONResponse(
                    {"error": "a valid bearer token is required"},
                    status_code=401,
                    headers={"www-authenticate": 'Bearer realm="d1-notifications", error="invalid_token"'},
                )
        return None

    async def token_endpoint(self, request: Request) -> Response:
        """RFC 6749 §4.4 client-credentials grant, client authenticated by HTTP Basic."""
        problem = self._client_problem(request, None)
        if problem is not None:
            return problem
        if self.oauth is None:
            return JSONResponse({"error": "outbound OAuth is not enabled"}, status_code=404)
        credentials = _basic_credentials(request.headers.get("authorization"))
        # RFC 6749 §2.3.1 form-encodes id and secret before Basic; D1 documents plain RFC 2617.
        if credentials is None or not (
            self.oauth.client_matches(*credentials)
            or self.oauth.client_matches(unquote(credentials[0]), unquote(credentials[1]))
        ):
            log.warning("token request refused: client authentication failed")
            return _oauth_error(
                401, "invalid_client", "client authentication failed",
                {"www-authenticate": 'Basic realm="d1-notifications"'},
            )
        if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != FORM:
            return _oauth_error(400, "invalid_request", f"the body must be {FORM}")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_TOKEN_REQUEST_BYTES:
                return _oauth_error(400, "invalid_request", "body too large")
        try:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return _oauth_error(400, "invalid_request", "the body is not UTF-8")
        if any(len(v) > 1 for v in form.values()):
            return _oauth_error(400, "invalid_request", "a parameter is repeated")
        grant = (form.get("grant_type") or [""])[0]
        if not grant:
            return _oauth_error(400, "invalid_request", "grant_type is missing")
        if grant != CLIENT_CREDENTIALS:
            return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
        requested = set((form.get("scope") or [""])[0].split())
        if requested - set(self.oauth.scope.split()):
            return _oauth_error(400, "invalid_scope", "the requested scope is not granted to this client")
        log.info("access token issued to OAuth client %s", self.oauth.client_id)
        return JSONResponse(self.oauth.mint(), headers=_NO_STORE)

    def routes(self) -> list[Route]:
        """Extra routes of the receiver app (the token endpoint when outbound OAuth is on)."""
        if self.oauth is None:
            return []
        return [Route(TOKEN_PATH, self.token_endpoint, methods=["POST"])]
