"""Counters that let tests prove exactly-once behaviour from the outside.

``submissions`` counts orders *accepted* per issuerRequestId; an idempotent repeat of an
accepted order does not raise it but raises ``repeats`` instead. So a correct client that
retries shows ``submissions == {rid: 1}`` however many times it had to retry.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    token_requests: int = 0
    tokens_issued: int = 0
    order_requests: int = 0
    status_requests: int = 0
    submissions: Counter[str] = field(default_factory=Counter)
    repeats: Counter[str] = field(default_factory=Counter)
    notifications_sent: int = 0
    notification_attempts: int = 0
    notifications_captured: int = 0
    notifications_dropped: int = 0
    notifications_given_up: int = 0
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

    def to_json(self) -> dict[str, Any]:
        return {
            "tokenRequests": self.token_requests,
            "tokensIssued": self.tokens_issued,
            "orderRequests": self.order_requests,
            "statusRequests": self.status_requests,
            "submissions": dict(self.submissions),
            "repeats": dict(self.repeats),
            "notificationsSent": self.notifications_sent,
            "notificationAttempts": self.notification_attempts,
            "notificationsCaptured": self.notifications_captured,
            "notificationsDropped": self.notifications_dropped,
            "notificationsGivenUp": self.notifications_given_up,
            "pullAndChangeRequests": self.pull_and_change_requests,
            "pullAndChangeRepeats": self.pull_and_change_repeats,
            "bulkNotifications": self.bulk_notifications,
            "bulkOperations": self.bulk_operations,
        }
