"""Pull & change eligibility: which change an order can still take (pure; validators call it).

D1 documents cancel / accelerate / redirect for orders not yet shipped
(docs/d1/card-order.md). The workflow refuses at once, without calling D1, what cannot
work, so an operator gets the reason in the update's answer instead of a D1 error later.
"""

from __future__ import annotations

from contracts.card_order import OrderRef, OrderState
from d1.patterns import PULL_AND_CHANGE_TYPES, REDIRECTING_TYPES


def change_problem(state: OrderState, ref: OrderRef, kind: str, *, has_address: bool) -> str | None:
    """Why the change ``kind`` cannot be asked now (None: it can)."""
    if kind not in PULL_AND_CHANGE_TYPES:
        return f"{kind} is not a pull & change type ({', '.join(PULL_AND_CHANGE_TYPES)})"
    if state.finished:
        assert state.outcome is not None
        return f"the order is already finished ({state.outcome.value}); pull & change only applies to open orders"
    if state.shipped:
        return f"the card is already shipped ({state.production_status}); pull & change only applies before shipment"
    if not state.submitted:
        return "D1 has not accepted the order yet; try again in a moment"
    if state.cancel_accepted:
        return "the order is being canceled"
    pending = state.pending_change
    if pending is not None:
        return f"the {pending.type} request {pending.change_id} is still waiting for D1's answer"
    redirecting = kind in REDIRECTING_TYPES
    if redirecting and not has_address:
        return f"{kind} needs new_delivery_address"
    if not redirecting and has_address:
        return f"{kind} takes no new_delivery_address (use REDIRECT or ACCELERATE_AND_REDIRECT)"
    if kind != "CANCEL" and ref.shipment_type is None:
        return f"{kind} only applies to shipped cards; this order is not shipped"
    if redirecting and ref.shipment_type == "BULK":
        return "a card in a BULK shipment cannot be redirected on its own"
    return None
