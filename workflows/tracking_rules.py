"""When a tracking ends (pure): the tracking hub's end rules, per tracking type.

The state machine (workflows/order_state.py) already ends a tracking on a return and on a
delivered parcel; this adds what is particular to each tracking type, as D1 documents its
notifications (docs/d1/tracking.md §8).
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
