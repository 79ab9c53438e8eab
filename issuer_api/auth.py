"""Who is calling, and for which issuers: mutual TLS (the client certificate names the issuerIds it
may act for, as the receiver checks D1's) and OAuth 2.0 JWT bearer tokens (verified as the codec
server verifies its tokens, security/oidc.py) with scopes per kind of call. Every refusal is a
problem answer with ``WWW-Authenticate``; the log names the caller, never a credential."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Path, Request

from issuer_api.problems import ProblemError
from security.oidc import JwksSource, OidcVerifier, TokenRejected, roles_of
from security.tls import ISSUER_PLACEHOLDER, identity_matches, issuers_named, peer_identity
from settings import IssuerApiSettings

log = logging.getLogger("issuer_api.auth")

WRITE, READ, CHANGE = "card-orders:write", "card-orders:read", "card-orders:change"
WEBHOOKS = "card-orders:webhooks"
SCOPES = {
    WRITE: "order cards, send batches, ask for trackings",
    READ: "read orders, timelines, batches and trackings, the event feed",
    CHANGE: "pull & change: cancel, accelerate, redirect",
    WEBHOOKS: "manage webhook endpoints (where events go, their secrets), redeliver an event",
}
REALM = "issuer-api"
MAX_AUTHORIZATION_CHARS = 16 * 1024


@dataclass(frozen=True)
class Caller:
    """``issuers``/``scopes`` None: not restricted by that credential (a development stack)."""

    client_id: str
    person: str | None = None
    issuers: frozenset[str] | None = None
    scopes: frozenset[str] | None = None
    any_issuer: bool = False

    def may_act_for(self, issuer_id: str) -> bool:
        return self.any_issuer or (self.issuers is not None and issuer_id in self.issuers)

    @property
    def requested_by(self) -> str:
        """The caller as recorded with an order or a change: ``client`` or ``client (person)``."""
        return f"{self.client_id} ({self.person})" if self.person else self.client_id

    def memo(self) -> dict[str, str]:
        return {"clientId": self.client_id, **({"person": self.person} if self.person else {})}


class VerifiedTokens:
    """Tokens already verified, until they expire: an issuer system sends the same token for many
    calls, and checking its signature each time was most of the API's own CPU per order."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, token: str) -> dict[str, Any] | None:
        claims = self._entries.get(token)
        if claims is None:
            return None
        if time.time() >= claims["exp"]:  # verified, so a number
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return claims

    def put(self, token: str, claims: dict[str, Any]) -> None:
        self._entries[token] = claims
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)


@dataclass(frozen=True, kw_only=True)
class ApiAuth:
    require_client_cert: bool
    identity_template: str = "urn:d1:issuer:{issuerId}"
    oidc: OidcVerifier | None = None
    issuers_claim: str = "issuer_ids"
    person_claim: str = "preferred_username"
    verified: VerifiedTokens = field(default_factory=VerifiedTokens)

    @classmethod
    def from_settings(cls, settings: IssuerApiSettings) -> ApiAuth:
        oauth = (settings.oauth_issuer, settings.oauth_audience, settings.oauth_jwks_file, settings.oauth_jwks_url)
        oidc = None
        if any(v is not None for v in oauth):
            if not settings.oauth_issuer or not settings.oauth_audience:
                raise ValueError("OAuth needs both ISSUER_API_OAUTH_ISSUER and ISSUER_API_OAUTH_AUDIENCE")
            if settings.oauth_jwks_file is None and settings.oauth_jwks_url is None:
                raise ValueError("OAuth needs ISSUER_API_OAUTH_JWKS_FILE or ISSUER_API_OAUTH_JWKS_URL")
            oidc = OidcVerifier(
                issuer=settings.oauth_issuer,
                audience=settings.oauth_audience,
                jwks=JwksSource(file=settings.oauth_jwks_file, url=settings.oauth_jwks_url),
                roles_claim="scope",
                leeway_s=settings.oauth_leeway_s,
            )
        return cls(
            require_client_cert=settings.tls_cert_file is not None and settings.tls_client_ca_file is not None,
            identity_template=settings.tls_client_identity,
            oidc=oidc,
            issuers_claim=settings.oauth_issuers_claim,
            person_claim=settings.oauth_person_claim,
        )

    @property
    def open(self) -> bool:
        """No credential at all (a plain-HTTP development API)."""
        return not self.require_client_cert and self.oidc is None

    def _challenge(self, error: str | None = None, scope: str | None = None) -> dict[str, str]:
        scheme = "Bearer" if self.oidc is not None else "Mutual-TLS"
        parts = [f'{scheme} realm="{REALM}"']
        if error:
            parts.append(f'error="{error}"')
        if scope:
            parts.append(f'scope="{scope}"')
        return {"www-authenticate": ", ".join(parts)}

    def unauthenticated(self, detail: str, error: str | None = None) -> ProblemError:
        return ProblemError(401, "unauthenticated", detail, headers=self._challenge(error))

    def forbidden(self, detail: str, scope: str | None = None) -> ProblemError:
        error = "insufficient_scope" if self.oidc is not None else None
        return ProblemError(403, "forbidden", detail, headers=self._challenge(error, scope))

    async def caller(self, request: Request) -> Caller:
        if self.open:
            return Caller(client_id="development", any_issuer=True)
        client_id, issuers, any_issuer = "", frozenset[str](), False
        if self.require_client_cert:
            identity = peer_identity(request.scope)
            if identity is None:
                raise self.unauthenticated("a TLS client certificate is required")
            client_id = identity.subject
            if ISSUER_PLACEHOLDER in self.identity_template:
                issuers = issuers_named(identity, self.identity_template)
            else:
                any_issuer = identity_matches(identity, self.identity_template, None)
        if self.oidc is None:
            return Caller(client_id=client_id, issuers=issuers, any_issuer=any_issuer)
        claims = await self._token_claims(request)
        token_client = next((v for k in ("client_id", "azp", "sub") if isinstance(v := claims.get(k), str) and v), "")
        person = claims.get(self.person_claim)
        if not isinstance(person, str) or not person:
            subject = claims.get("sub")
            person = subject if isinstance(subject, str) and subject != token_client else None
        token_issuers = roles_of(claims, self.issuers_claim) if self.issuers_claim in claims else None
        if self.require_client_cert:
            issuers = issuers & token_issuers if token_issuers is not None and not any_issuer else issuers
            if any_issuer and token_issuers is not None:
                issuers, any_issuer = token_issuers, False
        else:
            issuers = token_issuers or frozenset()
        scopes = roles_of(claims, "scope") | roles_of(claims, "scp")
        return Caller(
            client_id=token_client or client_id, person=person, issuers=issuers, scopes=scopes, any_issuer=any_issuer
        )

    async def _token_claims(self, request: Request) -> dict[str, Any]:
        assert self.oidc is not None
        header = request.headers.get("authorization") or ""
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value or len(header) > MAX_AUTHORIZATION_CHARS:
            raise self.unauthenticated("a bearer access token is required")
        if (claims := self.verified.get(value)) is not None:
            return claims
        try:
            verified = await self.oidc.verify(value)
        except TokenRejected as err:
            log.warning("access token refused: %s", err)
            raise self.unauthenticated(f"the access token was refused: {err}", "invalid_token") from None
        claims = dict(verified.claims)
        self.verified.put(value, claims)
        return claims

    def check(self, caller: Caller, issuer_id: str, scope: str) -> None:
        if caller.scopes is not None and scope not in caller.scopes:
            raise self.forbidden(f"the access token's scope does not include {scope}", scope)
        if not caller.may_act_for(issuer_id):
            log.warning("%s refused for issuer %s", caller.client_id, issuer_id)
            raise self.forbidden("this client may not act for this issuer")


IssuerId = Path(
    description="The issuer's D1 identifier (10 characters)",
    min_length=10,
    max_length=10,
    pattern="^[A-Za-z0-9_-]{10}$",
    examples=["TESTISS001"],
)


def requires(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A FastAPI dependency: the caller, allowed ``scope`` on the path's issuer, or a 401/403."""

    async def dependency(request: Request, issuerId: str = IssuerId) -> Caller:
        auth: ApiAuth = request.app.state.auth
        caller = await auth.caller(request)
        auth.check(caller, issuerId, scope)
        return caller

    return dependency
