"""D1's outbound Card Activation call toward the issuer, as the emulator plays it.

When a cardholder activates a card, D1 calls ``POST {issuer}/cms/api/v1/issuers/{issuerId}/
physicalCards/{cardId}/activate`` and expects 204 (D; the path is shared with the product in
d1/assumptions.py). D1 documents no retry schedule for it; the emulator retries as it
retries notifications (5xx, 401 once its token is renewed, 408, 429, no answer), with the
notifier's backoff, up to ``maxAttempts``; any other 4xx is D1 taking the issuer's "no".
Triggered on demand (``POST /_emulator/activate``) and by the scenarios ``ACTIVATED`` and
``ACTIVATED_BEFORE_DELIVERY`` (emulator/scenarios.py). Each call is kept for
``GET /_emulator/activations``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from d1.assumptions import ACTIVATION_PATH
from emulator.config import EmulatorSettings
from emulator.notifier import backoff_s
from emulator.outbound import OutboundAuthError, OutboundHttp

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 5
KEEP_CALLS = 1000
_RETRIED = frozenset({401, 408, 425, 429})


@dataclass
class ActivationCall:
    issuer_id: str
    card_id: str
    trigger: str  # "admin" or the scenario's name
    started_at: str
    attempts: list[int | str] = field(default_factory=list)  # HTTP status, or "error"
    answer: dict[str, Any] | None = None  # the last answer's body, when not 204

    @property
    def activated(self) -> bool:
        return bool(self.attempts) and self.attempts[-1] == 204

    def to_json(self) -> dict[str, Any]:
        return {
            "issuerId": self.issuer_id,
            "cardId": self.card_id,
            "trigger": self.trigger,
            "startedAt": self.started_at,
            "attempts": self.attempts,
            "activated": self.activated,
            "answer": self.answer,
        }


class Activator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self._settings = settings
        self._http: OutboundHttp | None = None
        self.calls: list[ActivationCall] = []
        self._tasks: set[asyncio.Task[ActivationCall]] = set()

    async def start(self) -> None:
        self._http = OutboundHttp(self._settings)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def reset(self) -> None:
        self.calls.clear()

    def activate_later(self, issuer_id: str, card_id: str, *, trigger: str) -> None:
        """A scenario's activation: in the background, like the cardholder's own timing."""
        task = asyncio.create_task(self.activate(issuer_id, card_id, trigger=trigger))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def activate(
        self, issuer_id: str, card_id: str, *, trigger: str, max_attempts: int = DEFAULT_MAX_ATTEMPTS
    ) -> ActivationCall:
        call = ActivationCall(issuer_id, card_id, trigger, datetime.now(UTC).isoformat(timespec="milliseconds"))
        self.calls.append(call)
        del self.calls[:-KEEP_CALLS]
        path = ACTIVATION_PATH.replace("{issuerId}", issuer_id).replace("{cardId}", card_id)
        url = f"{self._settings.receiver_base_url}{path}"
        headers = {"content-type": "application/json", "x-correlation-id": uuid.uuid4().hex}
        s = self._settings
        for attempt in range(1, max_attempts + 1):
            try:
                assert self._http is not None, "the activator is not started"
                response = await self._http.post(issuer_id, url, content=b"{}", headers=headers)
            except (httpx.HTTPError, OutboundAuthError) as err:
                call.attempts.append("error")
                log.warning("activation of card %s: no answer (%s)", card_id, type(err).__name__)
            else:
                call.attempts.append(response.status_code)
                call.answer = _body(response) if response.status_code != 204 else None
                if response.status_code < 500 and response.status_code not in _RETRIED:
                    break
            if attempt < max_attempts:
                await asyncio.sleep(backoff_s(attempt, s.notify_retry_base_ms, s.notify_retry_cap_ms))
        log.info("activation of card %s (issuer %s): %s", card_id, issuer_id, call.attempts)
        return call


def _body(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
