"""D1's outbound HTTP toward the issuer (notifications): mutual TLS per tenant, optional OAuth.

D1 configures mTLS per issuer (D1's TLS guide), so the emulator presents, for each issuer
tenant it notifies, a client certificate carrying that tenant's identity
(``EMULATOR_NOTIFY_CLIENT_CERT_FILE`` may contain ``{issuerId}``), and verifies the
receiver's server certificate against ``EMULATOR_NOTIFY_CA_FILE``.

With outbound OAuth on (a D1 tenant option) it first obtains a
client-credentials token from the issuer's token endpoint (HTTP Basic, form body),
caches it until shortly before it expires and sends it as ``Authorization: Bearer``.
D1's outbound token spec types ``expires_in`` as a *string* of seconds and adds an optional
``expires_at`` timestamp: both forms of ``expires_in`` (string or number) are accepted, and
``expires_at`` wins when present (:func:`token_lifetime_s`).
A 401 from the receiver drops the cached token; the notifier's retry fetches a new one.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from emulator.config import EmulatorSettings

log = logging.getLogger(__name__)

TOKEN_REFRESH_MARGIN_S = 30.0
DEFAULT_TOKEN_LIFETIME_S = 300.0


class OutboundAuthError(Exception):
    """The issuer's token endpoint did not give us a token (the notification is retried)."""


@dataclass
class _Token:
    value: str
    refresh_at: float


def _seconds(value: Any) -> float:
    """``expires_in`` as D1 types it (a string of seconds) or as RFC 6749 does (a number)."""
    if isinstance(value, bool):
        raise ValueError("expires_in must be a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = float(value.strip())
    else:
        raise ValueError("expires_in must be a number of seconds or a string of digits")
    if seconds < 0:
        raise ValueError("expires_in must not be negative")
    return seconds


def _timestamp(value: Any) -> datetime:
    """``expires_at``: an ISO 8601 timestamp (D1's example ``2023-06-06T05:05:59.711Z``)."""
    if not isinstance(value, str):
        raise ValueError("expires_at must be an ISO 8601 timestamp")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("expires_at must be an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise ValueError("expires_at must carry a time zone (e.g. Z)")
    return moment


def token_lifetime_s(body: Mapping[str, Any], now: datetime | None = None) -> float:
    """Seconds the token stays valid: ``expires_at`` when present, else ``expires_in``, else a
    default. Raises ValueError for a value of neither documented form."""
    if body.get("expires_at") is not None:
        remaining = (_timestamp(body["expires_at"]) - (now or datetime.now(UTC))).total_seconds()
        return max(0.0, remaining)
    if body.get("expires_in") is not None:
        return _seconds(body["expires_in"])
    return DEFAULT_TOKEN_LIFETIME_S


def _fill(template: str, issuer_id: str) -> str:
    return template.replace("{issuerId}", issuer_id)


class OutboundHttp:
    """One HTTP client per issuer tenant (its own client certificate) and its OAuth token."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self._settings = settings
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._tokens: dict[str, _Token] = {}
        self._token_locks: dict[str, asyncio.Lock] = {}

    def _verify(self, issuer_id: str) -> ssl.SSLContext | bool:
        s = self._settings
        if not s.receiver_base_url.startswith("https://"):
            return True
        ca = s.notify_ca_file or s.tls_ca_file
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if s.notify_client_cert_file and s.notify_client_key_file:
            context.load_cert_chain(
                Path(_fill(s.notify_client_cert_file, issuer_id)), Path(_fill(s.notify_client_key_file, issuer_id))
            )
        return context

    def _client(self, issuer_id: str) -> httpx.AsyncClient:
        client = self._clients.get(issuer_id)
        if client is None:
            client = httpx.AsyncClient(timeout=self._settings.notify_timeout_s, verify=self._verify(issuer_id))
            self._clients[issuer_id] = client
        return client

    def _client_secret(self) -> str:
        s = self._settings
        if s.outbound_oauth_client_secret_file is not None:
            return s.outbound_oauth_client_secret_file.read_text(encoding="utf-8").strip()
        if s.outbound_oauth_client_secret is not None:
            return s.outbound_oauth_client_secret.get_secret_value()
        raise OutboundAuthError("outbound OAuth client secret is not configured")

    async def _token(self, issuer_id: str) -> str | None:
        s = self._settings
        if not s.outbound_oauth_token_url:
            return None
        cached = self._tokens.get(issuer_id)
        if cached is not None and cached.refresh_at > time.monotonic():
            return cached.value
        lock = self._token_locks.setdefault(issuer_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(issuer_id)
            if cached is not None and cached.refresh_at > time.monotonic():
                return cached.value
            form = {"grant_type": "client_credentials"}
            if s.outbound_oauth_scope:
                form["scope"] = s.outbound_oauth_scope
            assert s.outbound_oauth_client_id is not None  # checked by the settings validator
            response = await self._client(issuer_id).post(
                _fill(s.outbound_oauth_token_url, issuer_id),
                data=form,
                auth=httpx.BasicAuth(s.outbound_oauth_client_id, self._client_secret()),
                headers={"accept": "application/json"},
            )
            if response.status_code != 200:
                raise OutboundAuthError(f"token endpoint answered HTTP {response.status_code}")
            try:
                body = response.json()
                value = body["access_token"]
                if not isinstance(value, str) or not value:
                    raise ValueError("access_token must be a non-empty string")
                lifetime = token_lifetime_s(body)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                # Only the kind of problem: the body holds a secret.
                reason = str(exc) if isinstance(exc, ValueError) and "expires" in str(exc) else "unreadable body"
                raise OutboundAuthError(f"token endpoint answered an invalid token response ({reason})") from None
            self._tokens[issuer_id] = _Token(value, time.monotonic() + max(0.0, lifetime - TOKEN_REFRESH_MARGIN_S))
            log.info("outbound OAuth token obtained for issuer %s (expires in %.0fs)", issuer_id, lifetime)
            return value

    async def post(self, issuer_id: str, url: str, *, content: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST to the issuer as D1 would: tenant certificate, bearer token when configured."""
        token = await self._token(issuer_id)
        if token is not None:
            headers = {**headers, "authorization": f"Bearer {token}"}
        response = await self._client(issuer_id).post(url, content=content, headers=headers)
        if response.status_code == 401 and token is not None:
            self._tokens.pop(issuer_id, None)
        return response

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        self._tokens.clear()
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
