"""The bank's card management system, as the receiver calls it to activate a card.

The bank's endpoint and its authentication are the bank's (``RECEIVER_CMS_*``): a POST to
its URL with the card's ids, a bearer token from a file, mutual TLS when it asks for it.
What comes back decides D1's answer (receiver/activation.py): a 2xx confirms, 404 says
the bank does not know the card, any other 4xx refuses, and a 5xx, a timeout or no
connection means the bank could not say (D1 is answered with an error it retries). Every
call for one card carries the same ``Idempotency-Key``: D1 repeats its call, and so may we.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx

from security.secret_files import read_secret
from settings import ReceiverSettings

log = logging.getLogger("receiver.cms")


class CmsAnswer(StrEnum):
    CONFIRMED = "confirmed"
    CARD_UNKNOWN = "card_unknown"
    REFUSED = "refused"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class CmsResult:
    answer: CmsAnswer
    detail: str
    reference: str | None = None


def idempotency_key(issuer_id: str, card_id: str) -> str:
    """A card is activated once: the key is the card."""
    return f"activate:{issuer_id}:{card_id}"


class BankCms:
    def __init__(
        self, url_template: str, *, token_file: Path | None, verify: ssl.SSLContext | bool, timeout_s: float
    ) -> None:
        self._url = url_template
        self._token_file = token_file
        self._http = httpx.AsyncClient(timeout=timeout_s, verify=verify)

    @classmethod
    def from_settings(cls, settings: ReceiverSettings) -> BankCms | None:
        url = settings.cms_activation_url
        if url is None:
            return None
        if not url.startswith("https://") and not (url.startswith("http://") and settings.allow_plaintext):
            raise ValueError("RECEIVER_CMS_ACTIVATION_URL must be https:// (http:// needs RECEIVER_ALLOW_PLAINTEXT)")
        if "{cardId}" not in url:
            raise ValueError("RECEIVER_CMS_ACTIVATION_URL must contain {cardId}")
        verify: ssl.SSLContext | bool = True
        if url.startswith("https://"):
            ca = settings.cms_ca_file
            context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if settings.cms_client_cert_file is not None and settings.cms_client_key_file is not None:
                context.load_cert_chain(settings.cms_client_cert_file, settings.cms_client_key_file)
            verify = context
        return cls(url, token_file=settings.cms_token_file, verify=verify, timeout_s=settings.cms_timeout_s)

    async def activate(self, issuer_id: str, card_id: str, *, activated_at: str) -> CmsResult:
        url = self._url.replace("{issuerId}", issuer_id).replace("{cardId}", card_id)
        headers = {"idempotency-key": idempotency_key(issuer_id, card_id), "accept": "application/json"}
        if self._token_file is not None:
            headers["authorization"] = f"Bearer {read_secret(self._token_file, None, what='bank CMS token')}"
        body = {"issuerId": issuer_id, "cardId": card_id, "activatedAt": activated_at}
        try:
            response = await self._http.post(url, json=body, headers=headers)
        except httpx.HTTPError as err:
            return CmsResult(CmsAnswer.UNAVAILABLE, f"the bank's CMS could not be reached ({type(err).__name__})")
        status = response.status_code
        if 200 <= status < 300:
            return CmsResult(CmsAnswer.CONFIRMED, f"HTTP {status}", _reference(response))
        if status == 404:
            return CmsResult(CmsAnswer.CARD_UNKNOWN, "the bank's CMS does not know the card")
        if 400 <= status < 500 and status not in (408, 425, 429):
            return CmsResult(CmsAnswer.REFUSED, f"the bank's CMS refused the activation (HTTP {status})")
        return CmsResult(CmsAnswer.UNAVAILABLE, f"the bank's CMS answered HTTP {status}")

    async def aclose(self) -> None:
        await self._http.aclose()


def _reference(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("reference") if isinstance(body, dict) else None
    return value[:64] if isinstance(value, str) else None
