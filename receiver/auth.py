"""Who may post D1 notifications (mutual TLS, outbound OAuth tokens: receiver/tokens.py) and read
the statistics (docs/security.md, "Outbound OAuth" and "Receiver statistics"). Malformed
header values are refused as a missing credential (401), never an error (500).
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from observability.logs import log_safe
from receiver.tokens import TokenIssuer
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
_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
_REALM = 'Bearer realm="d1-notifications"'


def _oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers={**_NO_STORE, **(headers or {})}
    )


def _credentials(header: str | None, scheme: str) -> str | None:
    if not header or len(header) > MAX_AUTHORIZATION_CHARS:
        return None
    given, _, value = header.partition(" ")
    value = value.strip()
    if given.lower() != scheme or not value:
        return None
    return value


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(client id, client secret), or None: not base64, not UTF-8 once decoded, no colon."""
    value = _credentials(header, "basic")
    if value is None:
        return None
    try:  # validate: the base64 alphabet with its padding only, as a whole
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # non-ASCII text, UnicodeDecodeError: ValueErrors
        return None
    client_id, sep, client_secret = decoded.partition(":")
    if not sep:
        return None
    return client_id, client_secret


@dataclass(frozen=True, kw_only=True)
class ReceiverAuth:
    require_client_cert: bool
    identity_template: str = "urn:d1:notifier:{issuerId}"
    oauth: TokenIssuer | None = None
    notification_scope: str = "d1-notifications"
    operators: OperatorTokens | None = None

    def __post_init__(self) -> None:
        if self.oauth is not None and self.notification_scope not in self.oauth.granted:
            raise ValueError(
                f"RECEIVER_OAUTH_NOTIFICATION_SCOPE {self.notification_scope!r} is not among the scopes granted "
                f"by RECEIVER_OAUTH_SCOPE ({self.oauth.scope!r}): no token could ever post a notification"
            )

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
        operators = settings.operator_tokens_file
        return cls(
            require_client_cert=settings.tls_cert_file is not None and settings.tls_client_ca_file is not None,
            identity_template=settings.tls_client_identity,
            oauth=oauth,
            notification_scope=settings.oauth_notification_scope,
            operators=OperatorTokens.from_file(operators) if operators is not None else None,
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
                log_safe(issuer_id) if issuer_id is not None else "(any)",
            )
            return JSONResponse({"error": "the client certificate does not match this issuer"}, status_code=403)
        return None

    def check_notification(self, request: Request, issuer_id: str) -> Response | None:
        problem = self._client_problem(request, issuer_id)
        if problem is not None or self.oauth is None:
            return problem
        token = _credentials(request.headers.get("authorization"), "bearer")
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
                log_safe(claims.issuer_id or "(none)"),
                log_safe(issuer_id),
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
        if self.operators is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        operator = self.operators.operator(_credentials(request.headers.get("authorization"), "bearer"))
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
        if self.oauth is None:
            return []
        return [Route(TOKEN_PATH, self.token_endpoint, methods=["POST"])]
