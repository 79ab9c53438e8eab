"""The envelope of every message that moves a workflow: start arguments, signals, updates.

A sealed payload is bound to its workflow by the payload codec (security/codec.py); the
envelope binds it to one handler (``kind``), one moment (``issued_at``) and one use
(``message_id``). The workflow refuses a message of another kind, from a sender whose role
may not send it, outside its validity window or seen before (workflows/messages.py,
docs/security.md "Messages bound to their order"). Unknown members are refused too: a sealed
object of another shape never reads as this one.

Senders outside a workflow may leave ``message_id`` and ``issued_at`` to their defaults; a
workflow must stamp them itself (``workflow.uuid4()``, ``workflow.now()``), because the
defaults read the clock and the system's randomness.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# ``ApplicationError.type`` of an update whose argument was refused (workflows/messages.py
# ``refused_update``): a caller tells it from the workflow's own answers.
MESSAGE_REFUSED: Final = "MessageRefused"

# The kinds: one per handler (and per workflow input). A pull & change's kind is its update's
# name (contracts/card_order.py CHANGE_UPDATES).
CARD_ORDER_START: Final = "card_order.start"
CARD_TRACKING_START: Final = "card_tracking.start"
D1_BATCH_START: Final = "d1_batch.start"
ORPHAN_INBOX_START: Final = "orphan_inbox.start"
D1_NOTIFICATION: Final = "d1_notification"
RECONCILE: Final = "reconcile_now"
BATCH_RESULT: Final = "d1_submission_result"
ORPHAN_RECORD: Final = "orphan_record"
CARD_ACTIVATED: Final = "card_activated"  # D1's Card Activation, on the card's order
CARD_ACTIVATION_START: Final = "card_activation.start"  # the card's activation record
CARD_ACTIVATION_CHECK: Final = "card_activation.check"  # D1's Card Activation, asked of the running order
# The issuer's event hub (events/hub.py): its input, the events the worker gathers, the
# endpoint management of the issuer API, and a sealed page's input.
EVENT_HUB_START: Final = "event_hub.start"
EVENT_PAGE_START: Final = "event_page.start"
EVENT_BATCH: Final = "events"
CREATE_ENDPOINT: Final = "create_endpoint"
UPDATE_ENDPOINT: Final = "update_endpoint"
ROTATE_SECRET: Final = "rotate_secret"  # noqa: S105 - a name
REDELIVER: Final = "redeliver"

# How long a message stays valid, and how far ahead of the workflow's clock its issue time may
# be (clock skew between hosts). The age covers the wait of a message whose workflow task is
# late (a worker backlog or a short outage); a notification refused after a longer outage is
# recovered by reconciliation. Orders copy these into OrderTiming (replay-safe).
MAX_AGE = timedelta(hours=1)
MAX_AHEAD = timedelta(minutes=5)
# Message ids an order remembers (carried across continue-as-new). Beyond it a replay is
# already older than MAX_AGE for any realistic rate of messages per order.
SEEN_MESSAGES = 256


def new_message_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    # Sealed with its sender's own key; anything else a process seals (results, views, activity
    # payloads) goes under the readers' key (security/sealing.py SENDER_SEALED).
    sealed_by_sender: ClassVar[bool] = True

    kind: str
    message_id: str = Field(default_factory=new_message_id, pattern=r"^[A-Za-z0-9_-]{8,64}$")
    issued_at: AwareDatetime = Field(default_factory=utc_now)
