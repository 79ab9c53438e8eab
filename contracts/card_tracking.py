"""The tracking hub's contract: follow a card that Thales did not personalize.

D1's "Track Card" (docs/d1/tracking.md) follows a card produced elsewhere (another bureau,
an in-branch printer) for one ``trackingType``: PRODUCTION, SHIPMENT or RETURN. D1 then
notifies ``STANDALONE_TRACKING`` operations through the same receiver as card orders. Each
tracking is a ``CardTrackingWorkflow`` (workflows/card_tracking.py) whose id comes from the
issuer, the card and the tracking type: asking twice for the same tracking returns the
same workflow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from contracts import messages
from contracts.card_order import NOTIFICATION_SIGNAL, RECONCILE_SIGNAL, ContractModel, OrderState, OrderTiming, Outcome
from contracts.messages import Message

WORKFLOW_TYPE = "CardTrackingWorkflow"
TrackingType = Literal["PRODUCTION", "SHIPMENT", "RETURN"]
TRACKING_TYPES: tuple[str, ...] = ("PRODUCTION", "SHIPMENT", "RETURN")

# The same signal names as a card order: the receiver delivers D1's updates the same way.
__all__ = ["NOTIFICATION_SIGNAL", "RECONCILE_SIGNAL"]
VIEW_QUERY = "tracking_view"  # -> TrackingView (also after the end); the run returns TrackingResult


def workflow_id(issuer_id: str, card_id: str, tracking_type: str) -> str:
    return f"card-tracking:{issuer_id}:{card_id}:{tracking_type}"


class TrackingRef(ContractModel):
    issuer_id: str
    card_id: str
    tracking_type: TrackingType
    carrier: str | None = None
    tracking_number: str | None = None


class TrackingInput(Message):
    """Sealed by the edge (first run) or the worker (continue-as-new)."""

    kind: Literal["card_tracking.start"] = messages.CARD_TRACKING_START
    ref: TrackingRef
    # D1's Track Card body (d1/tracking.py), validated by the starter.
    request: dict[str, Any]
    timing: OrderTiming = Field(default_factory=OrderTiming)
    # Whether D1's productionStatus answers for a tracked card (d1/assumptions.py); if not,
    # silence is only reported, never reconciled.
    reconcile: bool = True
    # Carried across continue-as-new (with the clocks of the wait loop).
    state: OrderState | None = None
    last_progress_at: datetime | None = None
    shipment_changed_at: datetime | None = None


class TrackingView(ContractModel):
    workflow_id: str
    ref: TrackingRef
    state: OrderState


class TrackingResult(ContractModel):
    """What a tracking's run returns: how it ended, nothing more (like contracts/card_order.py
    ``OrderResult``). The view with its timeline is not repeated in the history: the
    ``VIEW_QUERY`` query still answers it after the end, for the namespace's retention."""

    workflow_id: str
    outcome: Outcome | None = None
    outcome_reason: str | None = None
