"""Who is calling the codec server (SSO, static operator tokens, development loopback trust),
may they read payloads at all, and may they see names and addresses: docs/security.md, "Codec
server".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from starlette.requests import Request

from security.oidc import JwksSource, OidcVerifier, TokenRejected, is_loopback_host
from security.operator_tokens import OperatorTokens
from security.transport import loud
from settings import CodecServerSettings

log = logging.getLogger("security.codec_auth")

DEV_SUBJECT = "dev-loopback"
_FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


class CodecAuthConfigError(ValueError):
    pass


class Refused(Exception):
    """No acceptable credential. The message is safe to log (it never quotes a credential)."""


@dataclass(frozen=True)
class Operator:
    """``subject`` is what the log shows (never a credential)."""

    subject: str
    method: str  # "oidc" | "operator-token" | "dev-loopback"
    show_pii: bool
    may_read: bool = True  # holds the read role (the local user of the development mode does)


class CodecAuth:
    def __init__(
        self,
        *,
        tokens: OperatorTokens | None = None,
        oidc: OidcVerifier | None = None,
        dev_trust_loopback: bool = False,
        allowed_origins: Sequence[str] = (),
        pii_role: str = "card-orders-pii",
        mask_pii: bool = False,
        read_role: str = "card-orders-read",
    ) -> None:
        if tokens is None and oidc is None and not dev_trust_loopback:
            raise CodecAuthConfigError(
                "the codec server has no way to authenticate operators: configure OIDC "
                "(CODEC_SERVER_OIDC_ISSUER, _AUDIENCE and _JWKS_FILE or _JWKS_URL), static tokens "
                "(CODEC_SERVER_OPERATOR_TOKENS_FILE) or, on a loopback-only development machine, "
                "CODEC_SERVER_DEV_TRUST_LOOPBACK=true"
            )
        if dev_trust_loopback and not allowed_origins:
            raise CodecAuthConfigError(
                "CODEC_SERVER_DEV_TRUST_LOOPBACK needs CODEC_SERVER_CORS_ORIGINS (the UI's origin)"
            )
        self._tokens, self._oidc, self._dev = tokens, oidc, dev_trust_loopback
        self._origins = frozenset(allowed_origins)
        self._pii_role, self._mask_pii, self._read_role = pii_role, mask_pii, read_role

    @property
    def methods(self) -> list[str]:
        found = [name for name, on in (("oidc", self._oidc), ("operator-token", self._tokens)) if on is not None]
        return found + ([DEV_SUBJECT] if self._dev else [])

    @classmethod
    def from_settings(cls, settings: CodecServerSettings) -> CodecAuth:
        oidc_fields = (settings.oidc_issuer, settings.oidc_audience, settings.oidc_jwks_file, settings.oidc_jwks_url)
        oidc = None
        try:
            if any(v is not None for v in oidc_fields):
                if not settings.oidc_issuer or not settings.oidc_audience:
                    raise CodecAuthConfigError(
                        "OIDC needs both CODEC_SERVER_OIDC_ISSUER and CODEC_SERVER_OIDC_AUDIENCE"
                    )
                oidc = OidcVerifier(
                    issuer=settings.oidc_issuer,
                    audience=settings.oidc_audience,
                    jwks=JwksSource(file=settings.oidc_jwks_file, url=settings.oidc_jwks_url),
                    roles_claim=settings.oidc_roles_claim,
                    leeway_s=settings.oidc_leeway_s,
                )
            file = settings.operator_tokens_file
            tokens = OperatorTokens.from_file(file) if file is not None else None
        except ValueError as err:  # a CodecAuthConfigError too: the same message
            raise CodecAuthConfigError(str(err)) from None
        if settings.dev_trust_loopback and not is_loopback_host(settings.host):
            raise CodecAuthConfigError(
                f"CODEC_SERVER_DEV_TRUST_LOOPBACK is for a loopback-only development machine, but "
                f"CODEC_SERVER_HOST is {settings.host!r}: bind 127.0.0.1 or turn the development mode off"
            )
        return cls(
            tokens=tokens,
            oidc=oidc,
            dev_trust_loopback=settings.dev_trust_loopback,
            allowed_origins=settings.cors_origins,
            pii_role=settings.oidc_pii_role,
            mask_pii=settings.mask_pii,
            read_role=settings.oidc_read_role,
        )

    def announce(self) -> None:
        if self._dev:
            origins = ", ".join(sorted(self._origins))
            loud(
                "DEVELOPMENT MODE: CODEC_SERVER_DEV_TRUST_LOOPBACK is on. Browser requests from loopback with an "
                f"allowed Origin ({origins}) are decoded without any credential (PII masked). "
                "Never use this outside a single-user development machine.",
                log,
            )

    def _operator(self, subject: str, method: str, roles: frozenset[str]) -> Operator:
        may_read = self._read_role in roles
        return Operator(
            subject=subject,
            method=method,
            show_pii=may_read and not self._mask_pii and self._pii_role in roles,
            may_read=may_read,
        )

    def token_in(self, segments: Iterable[str]) -> bool:
        return self._tokens is not None and any(self._tokens.operator(s) for s in segments)

    async def authenticate(self, request: Request) -> Operator:
        header = request.headers.get("authorization")
        if header is not None:
            return await self._bearer(header)
        if self._dev:
            self._check_dev_request(request)
            return Operator(subject=DEV_SUBJECT, method=DEV_SUBJECT, show_pii=False)
        raise Refused("no Authorization header")

    async def _bearer(self, header: str) -> Operator:
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise Refused("the Authorization header is not 'Bearer <credential>'")
        if self._tokens is not None:
            name = self._tokens.operator(value)
            if name is not None:
                return self._operator(name, "operator-token", self._tokens.roles(name))
        if self._oidc is not None and value.count(".") == 2:
            try:
                verified = await self._oidc.verify(value)
            except TokenRejected as err:
                raise Refused(f"OIDC access token refused: {err}") from None
            return self._operator(verified.subject, "oidc", verified.roles)
        raise Refused("unknown bearer credential")

    def _check_dev_request(self, request: Request) -> None:
        peer = request.client.host if request.client else None
        if not is_loopback_host(peer):
            raise Refused("no Authorization header (development loopback trust: the peer is not loopback)")
        if any(h in request.headers for h in _FORWARDING_HEADERS):
            raise Refused("no Authorization header (development loopback trust: the request was forwarded)")
        if request.headers.get("origin") not in self._origins:
            raise Refused("no Authorization header (development loopback trust: Origin is not an allowed UI origin)")
