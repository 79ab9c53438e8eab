"""D1 URL paths, in one place (API-reference spelling: ``physicalCards``, ``operations:production``).

The documented paths are constants; the paths D1 does not document (pull & change, the
batch "Order cards" API, the tracking hub's Track Card) are templates in the program's
:class:`d1.assumptions.D1Interface`, filled here.
"""

from __future__ import annotations

from urllib.parse import quote

from d1.assumptions import D1Interface

TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path, not a secret
ORDER_PATH = "/issuers/{issuerId}/physicalCards/{cardId}/operations:production"
STATUS_PATH = "/issuers/{issuerId}/physicalCards/{cardId}/productionStatus"
NOTIFICATION_PATH = "/notifications/d1/v2/issuers/{issuerId}/cards"

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

_DEFAULT_INTERFACE = D1Interface()


def _fill(template: str, issuer_id: str, card_id: str | None = None) -> str:
    path = template.replace("{issuerId}", quote(issuer_id, safe=""))
    if card_id is not None:
        path = path.replace("{cardId}", quote(card_id, safe=""))
    return path


def order_path(issuer_id: str, card_id: str) -> str:
    return _fill(ORDER_PATH, issuer_id, card_id)


def status_path(issuer_id: str, card_id: str) -> str:
    return _fill(STATUS_PATH, issuer_id, card_id)


def pull_and_change_path(issuer_id: str, card_id: str, iface: D1Interface | None = None) -> str:
    return _fill((iface or _DEFAULT_INTERFACE).pullAndChangePath, issuer_id, card_id)


def batch_order_path(issuer_id: str, iface: D1Interface | None = None) -> str:
    return _fill((iface or _DEFAULT_INTERFACE).batchOrderPath, issuer_id)


def track_card_path(issuer_id: str, card_id: str, iface: D1Interface | None = None) -> str:
    return _fill((iface or _DEFAULT_INTERFACE).trackCardPath, issuer_id, card_id)


def notification_path(issuer_id: str) -> str:
    return _fill(NOTIFICATION_PATH, issuer_id)
