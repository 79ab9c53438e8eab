"""Standard Webhooks signatures (https://www.standardwebhooks.com), made by the `standardwebhooks` library.

``webhook-id`` is the event's id (the same on every retry, so a receiver de-duplicates on
it), ``webhook-timestamp`` the time of the attempt, ``webhook-signature`` one ``v1,<base64>``
HMAC-SHA256 of ``id.timestamp.body`` per secret currently valid: during a rotation the old
and the new secret both sign, and a receiver holding either verifies.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the documented prefix, not a secret
SECRET_BYTES = 32  # the specification asks for 24 to 64 bytes


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def is_secret(value: str) -> bool:
    if not value.startswith(SECRET_PREFIX):
        return False
    try:
        return 24 <= len(base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)) <= 64
    except ValueError:
        return False


def signed_headers(msg_id: str, body: str, keys: Iterable[str], *, now: datetime | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers (and the content type) for one attempt."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    signatures = " ".join(Webhook(key).sign(msg_id, at, body) for key in keys)
    if not signatures:
        raise ValueError("an endpoint without a secret cannot be signed for")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
