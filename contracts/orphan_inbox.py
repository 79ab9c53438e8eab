"""The orphan inbox's contract: where notifications for closed or unknown orders are kept.

One long-running inbox workflow per issuer (id ``orphan-notifications:{issuerId}``) records
each notification the receiver could not deliver to an open order, so an operator can see
it in the Temporal UI (details line) or through the ``recent`` query. Entries hold
identifiers and statuses only, never card data.
"""

from __future__ import annotations

from pydantic import Field

from contracts.card_order import ContractModel

WORKFLOW_TYPE = "OrphanNotificationsWorkflow"
RECORD_SIGNAL = "record"  # OrphanEntry
RECENT_QUERY = "recent"  # -> OrphanInbox

REASON_CLOSED = "order closed or unknown"
REASON_NO_ORDER = "no order for this card"


def workflow_id(issuer_id: str) -> str:
    return f"orphan-notifications:{issuer_id}"


class OrphanEntry(ContractModel):
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


class OrphanInbox(ContractModel):
    entries: list[OrphanEntry] = Field(default_factory=list)
    total: int = 0
