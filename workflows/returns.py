"""How a shipped card that went quiet ends: lost in transit, or presumed delivered.

A carrier that reported an exception (``OrderTiming.exception_shipment_statuses``) and then
nothing for ``quiet_after_shipped`` lost the card: the order ends ``LOST_IN_TRANSIT``, an
outcome of its own an operator filters on (``OrderOutcome``) and re-ships in one action
(starter/replacement.py). Any other quiet end stays ``SHIPPED``.
"""

from __future__ import annotations

from contracts.card_order import OrderState, OrderTiming, Outcome


def quiet_ending(state: OrderState, timing: OrderTiming) -> tuple[Outcome, str]:
    status = state.shipment.status if state.shipment is not None else None
    if status is not None and status in timing.exception_shipment_statuses:
        return Outcome.LOST_IN_TRANSIT, f"carrier reported {status}, then nothing: presumed lost in transit"
    return Outcome.SHIPPED, "carrier tracking quiet after shipping"
