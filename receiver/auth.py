"""Who may post D1 notifications to the receiver, and who may read its statistics.

* **mutual TLS, always** (unless the loudly logged development flag is on): the TLS layer
  refuses a connection without a client certificate chaining to the configured CA; here
  the certificate's identity must also match the issuer in the path
  (``RECEIVER_TLS_CLIENT_IDENTITY``, default ``urn:d1:notifier:{issuerId}``), so a
  certificate issued for another tenant, or an issuer's own D1 client certificate,
  cannot post notifications for this issuer (403);
* **outbound OAuth, when the D1 tenant option is on**: the receiver hosts the
  client-credentials token endpoint D1 calls (``POST /oauth2/token``, HTTP Basic,
  ``application/x-www-form-urlencoded``, RFC 6749 §4.4) and every notification must carry
  one of its bearer tokens;
* **operators** read ``GET /_receiver/stats`` with a token from
  ``RECEIVER_OPERATOR_TOKENS_FILE`` (``name:token`` lines, the codec server's format);
  without that file the route does not exist (404).

Tokens are self-contained (``v1.<claims>.<HMAC-SHA256>``) with a key derived from the
client secret, so any number of stateless receiver replicas accept each other's tokens
and rotating the client secret revokes every token. A token is bound to what it was
issued for: the OAuth client (``sub`` and ``client_id``), the granted ``scope`` and, when
the identity template names ``{issuerId}``, the D1 issuer whose notifier certificate
asked for it (``issuer_id``, learnt from the mutual-TLS identity, never from the request).

Answers to a notification (our choice; D1 documents only that the bearer token is sent):

* 401 ``invalid_token``: no bearer token, or one that is malformed, forged or expired
  (D1 should fetch a new token and retry);
* 403 ``insufficient_scope``: a genuine token that does not cover this request — its
  scope lacks ``RECEIVER_OAUTH_NOTIFICATION_SCOPE``, or it was issued for another issuer
  (the same answer as a certificate of another tenant).

Header values arrive as latin-1 text of any bytes the client sent; anything that is not
the expected ASCII shape is refused as a missing credential (401), never an error (500).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from security.bounded_body import BodyTooLarge, read_bounded
from security.operator_tokens import OperatorTokens
from security.secret_files import read_secret
from security.tls import ISSUER_PLACEHOLDER, identity_matches, issuers_named, peer_identity
from settings import ReceiverSettings

log = logging.getLogger("receiver.auth")

TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path, not a secret
CLIENT_CREDENTIALS = "client_credentials"
FORM = "application/x-www-form-urlencoded"
MAX_TOKEN_REQUEST_BYTES = 4096
# Longest Authorization header read at all: our tokens are ~250 characters, Basic
# credentials far less; anything longer is refused before any decoding or hashing.
MAX_AUTHORIZATION_CHARS = 4096
_TOKEN_PREFIX = "v1"  # noqa: S105 - token format version
_KDF_INFO = b"d1-receiver-outbound-oauth-token-v1"
_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
# v1.<base64url claims>.<base64url HMAC-SHA256, 43 characters>; ASCII only by construction.
_TOKEN_SHAPE = re.compile(r"v1\.[A-Za-z0-9_-]{1,2048}\.[A-Za-z0-9_-]{43}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_REALM = 'Bearer realm="d1-notifications"'


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token was issued for."""

    client_id: str
    scope: frozenset[str]
    issuer_id: str | None
    expires_at: int


class TokenIssuer:
    """Client-credentials tokens for one OAuth client (D1): mint and verify, no state.

    ``scope`` is what the client is granted (space-separated, RFC 6749 §3.3); a token
    carries the part of it the client asked for, or all of it when it asked for none.
    """

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
        """Constant-time comparison of both parts (no early exit on the id)."""
        id_ok = hmac.compare_digest(hashlib.sha256(client_id.encode("utf-8")).digest(), self._id_digest)
        secret_ok = hmac.compare_digest(hashlib.sha256(client_secret.encode("utf-8")).digest(), self._secret_digest)
        return id_ok and secret_ok

    def grant(self, requested: str) -> frozenset[str] | None:
        """The scope a token request gets: what it asked for, all when it asked for none,
        None when it asked for anything not granted to this client."""
        wanted = frozenset(requested.split())
        if not wanted:
            return self.granted
        return wanted if wanted <= self.granted else None

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, f"{_TOKEN_PREFIX}.{body}".encode("ascii"), hashlib.sha256).digest())

    def mint(self, *, scope: Iterable[str] | None = None, issuer_id: str | None = None) -> dict[str, object]:
        """The token response body (RFC 6749 §5.1, with D1's ``expires_at``).

        ``expires_in`` is a *string* of seconds: D1's published outbound token spec types
        it so (README "Security"); JSON clients that parse numbers leniently accept both.
        """
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
        """The claims of a genuine, unexpired token of this client, else None (never raises)."""
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
        return TokenClaims(
            client_id=self.client_id, scope=frozenset(scope.split()), issuer_id=issuer_id, expires_at=exp
        )


def _oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers={**_NO_STORE, **(headers or {})}
    )


def _credentials(header: str | None, scheme: str) -> str | None:
    """The value after ``<scheme> `` in an Authorization header, or None (too long,
    another scheme, no value)."""
    if not header or len(header) > MAX_AUTHORIZATION_CHARS:
        return None
    given, _, value = header.partition(" ")
    value = value.strip()
    if given.lower() != scheme or not value:
        return None
    return value


def bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``, or None."""
    return _credentials(header, "bearer")


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(client id, client secret) of ``Authorization: Basic <base64(id:secret)>``, or None
    for anything else: not base64, not UTF-8 once decoded, no colon."""
    value = _credentials(header, "basic")
    if value is None or not _BASE64.fullmatch(value):
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
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
        notification_scope: str = "d1-notifications",
        operators: OperatorTokens | None = None,
    ) -> None:
        if oauth is not None and notification_scope not in oauth.granted:
            raise ValueError(
                f"RECEIVER_OAUTH_NOTIFICATION_SCOPE {notification_scope!r} is not among the scopes granted "
                f"by RECEIVER_OAUTH_SCOPE ({oauth.scope!r}): no token could ever post a notification"
            )
        self.require_client_cert = require_client_cert
        self.identity_template = identity_template
        self.oauth = oauth
        self.notification_scope = notification_scope
        self.operators = operators

    @property
    def binds_issuer(self) -> bool:
        """Tokens name the issuer they were issued for: the caller's certificate says which."""
        return self.require_client_cert and ISSUER_PLACEHOLDER in self.identity_template

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
                settings.oauth_client_id, secret, scope=settings.oauth_scope, lifetime_s=settings.oauth_token_lifetime_s
            )
        operators = None
        if settings.operator_tokens_file is not None:
            operators = OperatorTokens.from_file(settings.operator_tokens_file)
        tls = settings.tls_cert_file is not None and settings.tls_client_ca_file is not None
        return cls(
            require_client_cert=tls,
            identity_template=settings.tls_client_identity,
            oauth=oauth,
            notification_scope=settings.oauth_notification_scope,
            operators=operators,
        )

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
        if problem is not None or self.oauth is None:
            return problem
        token = bearer_token(request.headers.get("authorization"))
        claims = self.oauth.verify(token) if token is not None else None
        if claims is None:
            return JSONResponse(
                {"error": "a valid bearer token is required"},
                status_code=401,
                headers={"www-authenticate": f'{_REALM}, error="invalid_token"'},
            )
        if self.notification_scope not in claims.scope:
            return self._insufficient(f"the token's scope does not include {self.notification_scope}")
        if self.binds_issuer and claims.issuer_id != issuer_id:
            log.warning(
                "bearer token issued for issuer %s refused on a notification for issuer %s",
                claims.issuer_id or "(none)",
                issuer_id,
            )
            return self._insufficient("the token was not issued for this issuer")
        return None

    def _insufficient(self, reason: str) -> Response:
        return JSONResponse(
            {"error": reason},
            status_code=403,
            headers={"www-authenticate": f'{_REALM}, error="insufficient_scope", scope="{self.notification_scope}"'},
        )

    def check_operator(self, request: Request) -> Response | None:
        """None for a request carrying an operator token; 404 when none are configured."""
        if self.operators is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        operator = self.operators.operator(bearer_token(request.headers.get("authorization")))
        if operator is None:
            log.warning("%s refused: no valid operator token", request.url.path)
            return JSONResponse(
                {"error": "an operator token is required"},
                status_code=401,
                headers={"www-authenticate": 'Bearer realm="receiver-operators"'},
            )
        log.info("%s read by operator %s", request.url.path, operator)
        return None

    def _token_issuer_id(self, request: Request) -> tuple[str | None, Response | None]:
        """The issuer a token request speaks for, from the caller's verified certificate."""
        if not self.binds_issuer:
            return None, None
        identity = peer_identity(request.scope)
        issuers = issuers_named(identity, self.identity_template) if identity is not None else frozenset()
        if len(issuers) != 1:
            # _client_problem already matched one; several would make the token ambiguous.
            log.warning("token request refused: the client certificate names %d issuers", len(issuers))
            return None, JSONResponse({"error": "the client certificate must name exactly one issuer"}, status_code=403)
        return next(iter(issuers)), None

    async def token_endpoint(self, request: Request) -> Response:
        """RFC 6749 §4.4 client-credentials grant, client authenticated by HTTP Basic."""
        problem = self._client_problem(request, None)
        if problem is not None:
            return problem
        if self.oauth is None:
            return JSONResponse({"error": "outbound OAuth is not enabled"}, status_code=404)
        issuer_id, problem = self._token_issuer_id(request)
        if problem is not None:
            return problem
        credentials = basic_credentials(request.headers.get("authorization"))
        # RFC 6749 §2.3.1 form-encodes id and secret before Basic; D1 documents plain RFC 2617.
        if credentials is None or not (
            self.oauth.client_matches(*credentials)
            or self.oauth.client_matches(unquote(credentials[0]), unquote(credentials[1]))
        ):
            log.warning("token request refused: client authentication failed")
            return _oauth_error(
                401,
                "invalid_client",
                "client authentication failed",
                {"www-authenticate": 'Basic realm="d1-notifications"'},
            )
        if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != FORM:
            return _oauth_error(400, "invalid_request", f"the body must be {FORM}")
        try:
            raw = await read_bounded(request, MAX_TOKEN_REQUEST_BYTES)
        except BodyTooLarge:
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
        scope = self.oauth.grant((form.get("scope") or [""])[0])
        if scope is None:
            return _oauth_error(400, "invalid_scope", "the requested scope is not granted to this client")
        log.info("access token issued to OAuth client %s for issuer %s", self.oauth.client_id, issuer_id or "(any)")
        return JSONResponse(self.oauth.mint(scope=scope, issuer_id=issuer_id), headers=_NO_STORE)

    def routes(self) -> list[Route]:
        """Extra routes of the receiver app (the token endpoint when outbound OAuth is on)."""
        if self.oauth is None:
            return []
        return [Route(TOKEN_PATH, self.token_endpoint, methods=["POST"])]
