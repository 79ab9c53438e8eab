"""The one place the issuer side talks HTTP to D1's banking API.

Errors are classified here, once, into what the workflow needs to know:
:class:`D1Rejected` (a 4xx other than 401/408/429: D1 will never accept this request, the
order ends as rejected) and :class:`D1Unavailable` (5xx, 429, 408, timeouts, connection
errors: retry with backoff, honouring ``Retry-After``). A 401 refreshes the token and
retries once inside the same call.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from activities.token_provider import AccessTokenProvider, TokenError
from d1.assumptions import D1Interface
from d1.notifications import OperationNotification, ProductionStatusResponse
from d1.order import OrderAccepted
from d1.paths import batch_order_path, order_path, pull_and_change_path, status_path, track_card_path
from observability.tracing import observe_d1_call

log = logging.getLogger(__name__)

RETRYABLE_4XX = frozenset({401, 408, 425, 429})


@dataclass
class D1Rejected(Exception):
    http_status: int
    error_code: str | None
    error: str | None

    def __str__(self) -> str:
        return f"D1 rejected the request: HTTP {self.http_status} {self.error_code or '-'}: {self.error or ''}"


@dataclass
class D1Unavailable(Exception):
    reason: str
    http_status: int | None = None
    retry_after_s: float | None = None

    def __str__(self) -> str:
        status = f"HTTP {self.http_status}" if self.http_status else "no response"
        return f"D1 unavailable ({status}): {self.reason}"


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff


def _error_fields(resp: httpx.Response) -> tuple[str | None, str | None]:
    try:
        body = resp.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code, text = body.get("errorCode"), body.get("error")
    return (str(code) if code is not None else None, str(text)[:500] if text is not None else None)


def classify(resp: httpx.Response) -> Exception:
    status = resp.status_code
    code, text = _error_fields(resp)
    if status >= 500 or status in RETRYABLE_4XX:
        return D1Unavailable(
            reason=code or text or resp.reason_phrase, http_status=status, retry_after_s=_retry_after(resp)
        )
    return D1Rejected(http_status=status, error_code=code, error=text)


class D1Client:
    """``interface``: the program's answers where D1's documentation is silent (paths of
    pull & change, the batch API, the tracking hub; d1/assumptions.py)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: AccessTokenProvider,
        *,
        banking_url: str,
        interface: D1Interface | None = None,
    ) -> None:
        self._http = http
        self._tokens = tokens
        self._base = banking_url.rstrip("/")
        self.interface = interface or D1Interface()

    async def _call(
        self,
        method: str,
        path: str,
        endpoint: str,
        issuer_id: str,
        card_id: str | None,
        json_body: Any,
        correlation_id: str,
    ) -> httpx.Response:
        for attempt in (1, 2):
            try:
                token = await self._tokens.get()
            except TokenError as exc:
                if not exc.retryable:
                    # Our own configuration (signing key, kid, issuer id) is wrong, not the order:
                    # keep retrying (bounded by the give-up window) instead of rejecting every
                    # order in the meantime, and say so loudly.
                    log.error("D1 refused our token request: %s; fix D1_SIGNING_KEY_FILE / D1_SIGNING_KID", exc)
                raise D1Unavailable(reason=f"token refused: {exc}", http_status=exc.status) from None
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "x-correlation-id": correlation_id,
            }
            with observe_d1_call(method, endpoint, headers, issuer_id=issuer_id, card_id=card_id) as call:
                try:
                    resp = await self._http.request(method, self._base + path, json=json_body, headers=headers)
                except httpx.TimeoutException as exc:
                    raise D1Unavailable(reason=f"timeout ({type(exc).__name__})") from None
                except httpx.HTTPError as exc:
                    raise D1Unavailable(reason=f"connection error ({type(exc).__name__})") from None
                call.answered(resp.status_code)
            if resp.status_code == 401 and attempt == 1:
                log.info("D1 answered 401; refreshing the access token once")
                self._tokens.invalidate(token)
                continue
            return resp
        return resp

    async def _post_operation(
        self, endpoint: str, path: str, body: dict[str, Any], issuer_id: str, card_id: str, correlation_id: str
    ) -> str:
        """POST a request D1 accepts with ``202 {operationId}``; the operationId ("" when D1
        left it out: it is optional in D1's schema, and notifications carry it anyway)."""
        resp = await self._call("POST", path, endpoint, issuer_id, card_id, body, correlation_id)
        if resp.status_code not in (200, 201, 202):
            raise classify(resp)
        try:
            accepted = OrderAccepted.model_validate(resp.json())
        except ValueError:
            accepted = OrderAccepted()
        return accepted.operationId or ""

    async def submit_order(self, issuer_id: str, card_id: str, body: dict[str, Any], *, correlation_id: str) -> str:
        path = order_path(issuer_id, card_id)
        return await self._post_operation("order", path, body, issuer_id, card_id, correlation_id)

    async def pull_and_change(self, issuer_id: str, card_id: str, body: dict[str, Any], *, correlation_id: str) -> str:
        """Pull & change (path and payload are our reading: docs/d1/card-order.md §14). D1
        answers at once; the personalization center's decision comes later as UPDATE_ORDER."""
        path = pull_and_change_path(issuer_id, card_id, self.interface)
        return await self._post_operation("pull_change", path, body, issuer_id, card_id, correlation_id)

    async def submit_batch(
        self, issuer_id: str, items: list[dict[str, Any]], *, correlation_id: str
    ) -> tuple[int, list[dict[str, Any]]]:
        """D1's "Order cards" (path and answer are our reading: docs/d1/batch.md). Returns the
        HTTP status and D1's per-card entries, in request order."""
        path = batch_order_path(issuer_id, self.interface)
        resp = await self._call("POST", path, "batch", issuer_id, None, {"cards": items}, correlation_id)
        if resp.status_code not in (200, 201, 202, 207):
            raise classify(resp)
        try:
            entries = resp.json().get("cards")
        except (ValueError, AttributeError):
            entries = None
        if not (isinstance(entries, list) and len(entries) == len(items) and all(isinstance(e, dict) for e in entries)):
            raise D1Unavailable(
                reason="the batch answer does not list one entry per card", http_status=resp.status_code
            )
        return resp.status_code, entries

    async def track_card(self, issuer_id: str, card_id: str, body: dict[str, Any], *, correlation_id: str) -> str:
        """The tracking hub's Track Card (path is our reading: docs/d1/tracking.md)."""
        path = track_card_path(issuer_id, card_id, self.interface)
        return await self._post_operation("track", path, body, issuer_id, card_id, correlation_id)

    async def production_status(
        self, issuer_id: str, card_id: str, *, correlation_id: str | None = None
    ) -> OperationNotification | None:
        path = status_path(issuer_id, card_id)
        resp = await self._call("GET", path, "status", issuer_id, card_id, None, correlation_id or uuid.uuid4().hex)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise classify(resp)
        try:
            return ProductionStatusResponse.model_validate(resp.json()).latest()
        except ValueError:
            raise D1Unavailable(reason="productionStatus answered a body we cannot read", http_status=200) from None
