"""D1 URL paths, in one place (API-reference spelling: ``physicalCards``, ``operations:production``)."""

from __future__ import annotations

from urllib.parse import quote

TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path, not a secret
ORDER_PATH = "/issuers/{issuerId}/physicalCards/{cardId}/operations:production"
STATUS_PATH = "/issuers/{issuerId}/physicalCards/{cardId}/productionStatus"
# Not documented by D1 (card-order.md §16): our choice, kept here only.
PULL_AND_CHANGE_PATH = "/issuers/{issuerId}/physicalCards/{cardId}/operations:pullAndChange"
NOTIFICATION_PATH = "/notifications/d1/v2/issuers/{issuerId}/cards"

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _fill(template: str, issuer_id: str, card_id: str | None = None) -> str:
    path = template.replace("{issuerId}", quote(issuer_id, safe=""))
    if card_id is not None:
        path = path.replace("{cardId}", quote(card_id, safe=""))
    return path


def order_path(issuer_id: str, card_id: str) -> str:
    return _fill(ORDER_PATH, issuer_id, card_id)


def status_path(issuer_id: str, card_id: str) -> str:
    return _fill(STATUS_PATH, issuer_id, card_id)


def pull_and_change_path(issuer_id: str, card_id: str) -> str:
    return _fill(PULL_AND_CHANGE_PATH, issuer_id, card_id)


def notification_path(issuer_id: str) -> str:
    return _fill(NOTIFICATION_PATH, issuer_id)
