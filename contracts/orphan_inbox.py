"""The orphan inbox's contract: where notifications for closed or unknown orders are kept.

One long-running inbox workflow per issuer (id ``orphan-notifications:{issuerId}``) records
each notification the receiver could not deliver to an open order, so an operator can see
it in the Temporal UI (details line) or through the ``recent`` query. Entries hold
identifiers and statuses only, never card data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contracts import messages
from contracts.messages import Message

WORKFLOW_TYPE = "OrphanNotificationsWorkflow"
RECORD_SIGNAL = "record"  # OrphanEntry
RECENT_QUERY = "recent"  # -> OrphanInbox

REASON_CLOSED = "order closed or unknown"
REASON_NO_ORDER = "no order for this card"


def workflow_id(issuer_id: str) -> str:
    return f"orphan-notifications:{issuer_id}"


class OrphanEntry(Message):
    """Sealed by the receiver."""

    kind: Literal["orphan_record"] = messages.ORPHAN_RECORD
    issuer_id: str
    card_id: str
    issuer_request_id: str | None = None
    operation_id: str
    operation: str
    operation_status: str
    production_status: str | None = None
    shipment_status: str | None = None
    reason: str  # REASON_CLOSED, REASON_NO_ORDER
    received_at: str


class OrphanInbox(Message):
    """The inbox's input (sealed by the receiver, or the worker on continue-as-new) and view."""

    kind: Literal["orphan_inbox.start"] = messages.ORPHAN_INBOX_START
    entries: list[OrphanEntry] = Field(default_factory=list)
    total: int = 0
    # Ids of the records accepted lately (contracts/messages.py SEEN_MESSAGES).
    seen_messages: list[str] = Field(default_factory=list)
