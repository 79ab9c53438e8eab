"""Verifying the OIDC access tokens the Temporal UI forwards to the codec server (the rules:
docs/security.md, "Codec server"). Claims are checked here rather than by jwcrypto's
``check_claims``, which stops looking at ``nbf`` as soon as any claim is listed, and whose
messages quote claim values.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from jwcrypto import jwk, jws
from jwcrypto.common import JWException

log = logging.getLogger("security.oidc")

# Asymmetric signatures only: the verifier holds public keys, so a symmetric algorithm
# could only ever be "verified" with public material an attacker also has.
ALLOWED_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_KTY_FOR_ALG = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
MAX_TOKEN_CHARS = 16 * 1024
MAX_JWKS_BYTES = 1024 * 1024
JWKS_TTL_S = 3600.0
JWKS_MIN_REFETCH_S = 30.0
JWKS_FETCH_TIMEOUT_S = 5.0


class TokenRejected(Exception):
    """The message is safe to log: it never quotes the token."""


@dataclass(frozen=True)
class VerifiedToken:
    subject: str
    roles: frozenset[str]
    # Every verified claim: the issuer API reads the client, the person and the issuerIds.
    claims: Mapping[str, Any] = field(default_factory=dict)


def is_loopback_host(host: str | None) -> bool:
    # No name resolution: "localhost" or a loopback IP literal.
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _signing_keys(document: str, where: str) -> jwk.JWKSet:
    """Keys for encryption, symmetric keys and keys without ``kid`` are left out; private
    halves are dropped."""
    try:
        parsed = json.loads(document)
        entries = parsed["keys"]
        if not isinstance(entries, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ValueError(f'{where}: not a JWKS document ({{"keys": [...]}})') from None
    keys = jwk.JWKSet()
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if entry.get("use", "sig") != "sig" or not isinstance(entry.get("kid"), str):
            continue
        if keys.get_keys(entry["kid"]):
            log.warning("%s: skipping a second key with kid %r", where, entry["kid"][:64])
            continue
        try:
            key = jwk.JWK(**entry)
        except (JWException, ValueError, TypeError):
            log.warning("%s: skipping an unreadable key (kid %r)", where, entry["kid"][:64])
            continue
        keys.add(jwk.JWK(**key.export_public(as_dict=True)))
    return keys


class JwksSource:
    """From a file, a URL, or both (their union)."""

    def __init__(self, *, file: Path | None = None, url: str | None = None) -> None:
        if file is None and url is None:
            raise ValueError("OIDC needs the issuer's keys: set CODEC_SERVER_OIDC_JWKS_FILE or _JWKS_URL")
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(parts.hostname)):
                raise ValueError("CODEC_SERVER_OIDC_JWKS_URL must be an https:// URL (http:// only on loopback)")
        self._url = url
        self._file_keys = jwk.JWKSet()
        if file is not None:
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"cannot read OIDC JWKS file {file}: {exc.strerror}") from None
            self._file_keys = _signing_keys(text, str(file))
            if not self._file_keys["keys"] and url is None:
                raise ValueError(f"{file}: no public signature key with a kid")
        self._url_keys = jwk.JWKSet()
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._unknown_at: float | None = None  # last fetch because of an unknown kid
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwk.JWK | None:
        if self._url is None:
            return self._lookup(kid)
        # One fetch at a time; requests arriving meanwhile wait for its keys rather than fetch too.
        async with self._lock:
            now = time.monotonic()
            fresh = self._due(now)
            if fresh:
                await self._fetch(self._url, now)
            found = self._lookup(kid)
            may_refetch = self._unknown_at is None or now - self._unknown_at >= JWKS_MIN_REFETCH_S
            if found is None and not fresh and may_refetch:
                self._unknown_at = now
                await self._fetch(self._url, now)
                found = self._lookup(kid)
            return found

    def _lookup(self, kid: str) -> jwk.JWK | None:
        key: jwk.JWK | None = self._file_keys.get_key(kid) or self._url_keys.get_key(kid)
        return key

    def _due(self, now: float) -> bool:
        if self._attempted_at is None:
            return True
        if now - self._attempted_at < JWKS_MIN_REFETCH_S:  # also after a failure: no retry storm
            return False
        return self._fetched_at is None or now - self._fetched_at > JWKS_TTL_S

    async def _fetch(self, url: str, now: float) -> None:
        self._attempted_at = now
        try:
            keys = _signing_keys(await self._download(url), "OIDC JWKS URL")
        except (httpx.HTTPError, ValueError) as err:
            log.warning("OIDC JWKS fetch from %s failed (%s); keeping the keys we have", url, err)
            return
        self._url_keys, self._fetched_at = keys, time.monotonic()
        log.info("OIDC JWKS fetched from %s: %d signature key(s)", url, len(keys["keys"]))

    @staticmethod
    async def _download(url: str) -> str:
        async with httpx.AsyncClient(timeout=JWKS_FETCH_TIMEOUT_S, follow_redirects=False) as http:
            async with http.stream("GET", url, headers={"accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise ValueError(f"larger than {MAX_JWKS_BYTES} bytes")
        return body.decode("utf-8", errors="replace")


def roles_of(claims: Mapping[str, Any], claim: str) -> frozenset[str]:
    """A list of strings, or one space-separated string (OAuth's ``scope`` style). An exact
    claim name wins; otherwise a dotted name walks nested objects (``realm_access.roles``)."""
    value: Any = claims.get(claim)
    if value is None and "." in claim:
        value = claims
        for part in claim.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def _numeric(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise TokenRejected(f"no '{name}' claim")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRejected(f"'{name}' is not a NumericDate")
    return float(value)


class OidcVerifier:
    def __init__(
        self, *, issuer: str, audience: str, jwks: JwksSource, roles_claim: str = "roles", leeway_s: int = 30
    ) -> None:
        if not issuer or not audience:
            raise ValueError("OIDC needs both CODEC_SERVER_OIDC_ISSUER and CODEC_SERVER_OIDC_AUDIENCE")
        self.issuer, self.audience, self.roles_claim = issuer, audience, roles_claim
        self._jwks, self._leeway = jwks, leeway_s

    async def verify(self, token: str, *, now: float | None = None) -> VerifiedToken:
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2 or token.startswith("{"):
            raise TokenRejected("not a compact JWS")
        message = jws.JWS()
        try:
            message.deserialize(token)
            header = message.jose_header
        except (JWException, ValueError, TypeError):
            raise TokenRejected("not a compact JWS") from None
        if not isinstance(header, dict):
            raise TokenRejected("not a compact JWS")
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALLOWED_ALGS:
            raise TokenRejected(f"algorithm {str(alg)[:16]!r} not allowed (asymmetric signatures only)")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("no 'kid' in the header")
        key = await self._jwks.key(kid)
        if key is None:
            raise TokenRejected(f"unknown kid {kid[:64]!r}")
        if key.get("kty") != _KTY_FOR_ALG[str(alg)[:2]]:
            raise TokenRejected(f"kid {kid[:64]!r} (kty {key.get('kty')}) cannot verify {alg}")
        message.allowed_algs = list(ALLOWED_ALGS)
        try:
            message.verify(key, alg=alg)
            claims = json.loads(message.payload)
        except (JWException, ValueError, TypeError):
            raise TokenRejected("bad signature") from None
        if not isinstance(claims, dict):
            raise TokenRejected("claims are not a JSON object")
        self._check_claims(claims, time.time() if now is None else now)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenRejected("no 'sub' claim")
        return VerifiedToken(subject=subject, roles=roles_of(claims, self.roles_claim), claims=claims)

    def _check_claims(self, claims: Mapping[str, Any], now: float) -> None:
        if claims.get("iss") != self.issuer:
            raise TokenRejected("wrong issuer")
        audiences = claims.get("aud")
        if self.audience not in (audiences if isinstance(audiences, list) else [audiences]):
            raise TokenRejected("wrong audience")
        exp = _numeric(claims, "exp", required=True)
        assert exp is not None
        if now > exp + self._leeway:
            raise TokenRejected("expired")
        nbf = _numeric(claims, "nbf", required=False)
        if nbf is not None and now + self._leeway < nbf:
            raise TokenRejected("not yet valid (nbf)")
        iat = _numeric(claims, "iat", required=False)
        if iat is not None and now + self._leeway < iat:
            raise TokenRejected("issued in the future (iat)")
