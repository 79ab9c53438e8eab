"""When a tracking ends (pure): the tracking hub's end rules, per tracking type.

D1 documents (docs/d1/tracking.md) that PRODUCTION and RETURN tracking send one
SUCCESSFUL ``STANDALONE_TRACKING`` notification (``CARD_SHIPPED`` once the produced card
left, ``CARD_RETURNED``), and SHIPMENT tracking sends PENDING, then SUCCESSFUL updates as
the parcel moves. The state machine (workflows/order_state.py) already ends a tracking on
a return (the terminal-status table) and on a delivered parcel; this adds what is
particular to the tracking types.
"""

from __future__ import annotations

from contracts.card_order import OrderState, Outcome
from d1.statuses import OperationStatus, ProductionStatus


def tracking_ending(tracking_type: str, state: OrderState) -> tuple[Outcome, str] | None:
    """The outcome a tracking reached beyond the state machine's own (None: go on)."""
    if state.finished:
        return None
    if (
        tracking_type == "PRODUCTION"
        and state.production_status == ProductionStatus.CARD_SHIPPED
        and (state.operation_status == OperationStatus.SUCCESSFUL)
    ):
        return Outcome.SHIPPED, "production tracked until the card left the production site"
    return None
