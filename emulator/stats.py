"""Counters that let tests prove exactly-once behaviour from the outside.

``submissions`` counts orders *accepted* per issuerRequestId; an idempotent repeat of an
accepted order does not raise it but raises ``repeats`` instead. Orders are keyed by
issuerRequestId, so ``submissions[rid]`` is 1 for any client, however often it sent the
request: it cannot show a duplicate; a card's counters can. ``cards``
counts the same per cardId, whichever API the order came through (single or batch) and
whether it carried an issuerRequestId: ``accepted`` (each one starts one production
simulation), ``single`` / ``batch`` (how), ``repeats``, ``refused`` and ``produced`` (how
many of its productions reached CARD_PROD_DONE). ``cards[c].requests`` breaks every order
request D1 processed for the card down by issuerRequestId (``""``: none, or none readable):
``first`` (it started a production), ``repeat`` (it answered an existing order), ``refused``
(an error answer). Requests answered by an injected failure before processing are not in it
(they were never read), only in ``orderRequests`` / ``batchRequests``.

Exactly-once for a card is ``accepted == produced == 1`` with one issuerRequestId in
``requests``, whatever the number of repeats a fault forced.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Via = Literal["single", "batch"]


@dataclass
class RequestCounters:
    first: int = 0
    repeat: int = 0
    refused: int = 0


@dataclass
class CardCounters:
    accepted: int = 0
    single: int = 0
    batch: int = 0
    repeats: int = 0
    refused: int = 0
    produced: int = 0
    requests: defaultdict[str, RequestCounters] = field(default_factory=lambda: defaultdict(RequestCounters))

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "requests"}
        body["requests"] = {rid: asdict(counters) for rid, counters in self.requests.items()}
        return body


@dataclass
class Stats:
    token_requests: int = 0
    tokens_issued: int = 0
    order_requests: int = 0
    status_requests: int = 0
    submissions: Counter[str] = field(default_factory=Counter)
    repeats: Counter[str] = field(default_factory=Counter)
    # Per cardId (the key is the cardId alone: tests use unique ones across issuers).
    cards: defaultdict[str, CardCounters] = field(default_factory=lambda: defaultdict(CardCounters))
    # The batch "Order cards" API: calls received (any answer), and items by outcome.
    batch_requests: int = 0
    batch_cards: int = 0
    batch_accepted: int = 0
    batch_repeats: int = 0
    batch_refused: int = 0
    # The tracking hub: Track Card calls accepted (202) and idempotent repeats of one.
    track_requests: int = 0
    track_repeats: int = 0
    notifications_sent: int = 0
    notification_attempts: int = 0
    notifications_captured: int = 0
    notifications_dropped: int = 0
    notifications_given_up: int = 0
    # Delivery attempts that did not get a 2xx (receiver down, refusing, timing out).
    notification_failures: int = 0
    # Pull & change requests accepted for processing (202), and idempotent repeats of one.
    pull_and_change_requests: int = 0
    pull_and_change_repeats: int = 0
    # Bodies carrying several operations (BULK shipments) and the operations in them.
    bulk_notifications: int = 0
    bulk_operations: int = 0

    def reset(self) -> None:
        fresh = Stats()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    def accepted(self, card_id: str, issuer_request_id: str | None, via: Via) -> None:
        if issuer_request_id is not None:
            self.submissions[issuer_request_id] += 1
        counters = self.cards[card_id]
        counters.accepted += 1
        counters.requests[issuer_request_id or ""].first += 1
        setattr(counters, via, getattr(counters, via) + 1)
        if via == "batch":
            self.batch_accepted += 1

    def repeated(self, card_id: str, issuer_request_id: str | None, via: Via) -> None:
        if issuer_request_id is not None:
            self.repeats[issuer_request_id] += 1
        self.cards[card_id].repeats += 1
        self.cards[card_id].requests[issuer_request_id or ""].repeat += 1
        if via == "batch":
            self.batch_repeats += 1

    def refused(self, card_id: str | None, issuer_request_id: str | None, via: Via) -> None:
        if card_id is not None:
            self.cards[card_id].refused += 1
            self.cards[card_id].requests[issuer_request_id or ""].refused += 1
        if via == "batch":
            self.batch_refused += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "tokenRequests": self.token_requests,
            "tokensIssued": self.tokens_issued,
            "orderRequests": self.order_requests,
            "statusRequests": self.status_requests,
            "submissions": dict(self.submissions),
            "repeats": dict(self.repeats),
            "cards": {card_id: c.to_json() for card_id, c in self.cards.items()},
            "batchRequests": self.batch_requests,
            "batchCards": self.batch_cards,
            "batchAccepted": self.batch_accepted,
            "batchRepeats": self.batch_repeats,
            "batchRefused": self.batch_refused,
            "trackRequests": self.track_requests,
            "trackRepeats": self.track_repeats,
            "notificationsSent": self.notifications_sent,
            "notificationAttempts": self.notification_attempts,
            "notificationsCaptured": self.notifications_captured,
            "notificationsDropped": self.notifications_dropped,
            "notificationsGivenUp": self.notifications_given_up,
            "notificationFailures": self.notification_failures,
            "pullAndChangeRequests": self.pull_and_change_requests,
            "pullAndChangeRepeats": self.pull_and_change_repeats,
            "bulkNotifications": self.bulk_notifications,
            "bulkOperations": self.bulk_operations,
        }
