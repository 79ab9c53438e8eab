"""The card activation contract: what the receiver records when D1 relays a cardholder's
activation (D1's outbound Card Activation call, receiver/activation.py).

While the card's order runs, the order decides how the activation stands against delivery
(update ``check_activation``, :class:`ActivationCheck`): its own state holds every D1
notification that reached its history before, where its search attributes trail by a workflow
task. The receiver holds no readers' key (docs/security.md), so it reads the decision from the
update's outcome: completed for :attr:`ActivationFlag.ACTIVATED`, failed non-retryably with the
flag as the failure's type (in clear) otherwise; a refusal is recorded by the order then.

An activation is recorded twice, for two readers: on the card's order, when the order still
runs (signal ``card_activated`` once the bank confirmed, a refusal by the update above:
timeline entry, ``state.activation``, search attributes ``ActivatedAt`` and ``Activation``),
and, always, as the card's activation record: a short workflow
``card-activation:{issuerId}:{cardId}`` whose result is the :class:`ActivationRecord` and
whose search attributes say when and how (an order usually ends at delivery, before the
cardholder activates, and a closed workflow cannot be changed). Identifiers and stages only.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Literal

from contracts import messages
from contracts.messages import Message
from contracts.visibility import equals, of_type

WORKFLOW_TYPE = "CardActivationWorkflow"
# Signal on the card's order (sent by the receiver): ActivationRecord.
ACTIVATED_SIGNAL = "card_activated"
# Update on the card's running order (sent by the receiver, before the bank is asked): ActivationCheck.
CHECK_UPDATE = "check_activation"


class ActivationFlag(StrEnum):
    """Search attribute ``Activation``: how the activation stood against the card's delivery."""

    ACTIVATED = "ACTIVATED"  # after delivery (or no order of the product's to compare with)
    BEFORE_DELIVERY = "ACTIVATED_BEFORE_DELIVERY"  # accepted, flagged: the card was not delivered yet
    REFUSED_BEFORE_DELIVERY = "REFUSED_BEFORE_DELIVERY"  # refused: the program refuses those


def supersedes(flag: ActivationFlag, recorded: Sequence[str] | None) -> bool:
    """Whether an activation with ``flag`` is news next to the one ``recorded`` (search attribute
    ``Activation``): the first one is, and an accepted one after a refusal; a repeat of D1's call,
    even once the card arrived, leaves the first accepted activation as it was (its flag stays)."""
    if not recorded:
        return True
    refused = ActivationFlag.REFUSED_BEFORE_DELIVERY
    return list(recorded) == [refused.value] and flag != refused


def stage_line(outcome: str | None, production_status: str | None, shipment_status: str | None) -> str:
    """Where an order stood at an activation, as records and timelines name it."""
    return " / ".join(v for v in (outcome, production_status, shipment_status) if v) or "not acknowledged by D1"


def decided_flag(failure_type: str | None) -> ActivationFlag | None:
    """The flag a failed ``check_activation`` names (its failure's type); None for another failure."""
    try:
        flag = ActivationFlag(failure_type or "")
    except ValueError:
        return None
    return None if flag == ActivationFlag.ACTIVATED else flag


def workflow_id(issuer_id: str, card_id: str) -> str:
    return f"card-activation:{issuer_id}:{card_id}"


def timeline_key(flag: ActivationFlag) -> str:
    """The activation's key in the order's timeline, and the fact its event id is derived from
    (events/from_order.py): the order and the activation record announce it under one id."""
    return f"activation:{flag.value}"


class ActivationRecord(Message):
    """One activation of a card as the receiver saw it: a message from the receiver, the
    argument of ``card_activated`` (kind ``card_activated``) and the activation record's input
    (kind ``card_activation.start``); the record's result is its JSON (sealed for readers)."""

    kind: Literal["card_activated", "card_activation.start"] = messages.CARD_ACTIVATED
    issuer_id: str
    card_id: str
    activated_at: str  # when the receiver got D1's call (ISO 8601, UTC)
    flag: ActivationFlag
    # The card's order, and where it stood (production / shipment status, outcome) at activation.
    order_workflow_id: str | None = None
    order_stage: str | None = None
    issuer_request_id: str | None = None  # the order's (its events name the card by it)
    # Set on the activation record only: the running order took the activation before its
    # outcome and raises its event itself; otherwise the record raises it (workflows/activation.py).
    order_announces: bool = False
    # The bank's reference for the activation, when its CMS gave one.
    cms_reference: str | None = None

    @property
    def before_delivery(self) -> bool:
        return self.flag != ActivationFlag.ACTIVATED


class ActivationCheck(Message):
    """D1's Card Activation, asked of the card's running order before the bank is (update
    ``check_activation``): the order decides the flag from its own state; the program's rule
    comes along, since a workflow reads no file."""

    kind: Literal["card_activation.check"] = messages.CARD_ACTIVATION_CHECK
    issuer_id: str
    card_id: str
    activated_at: str  # when the receiver got D1's call (ISO 8601, UTC)
    refuse_before_delivery: bool = False  # lifecycle.refuseActivationBeforeDelivery


def activations_query(issuer_id: str | None = None, flag: ActivationFlag | None = None) -> str:
    """The activation records, e.g. every activation before delivery of one issuer."""
    parts = [equals("IssuerId", issuer_id) if issuer_id else "", equals("Activation", flag) if flag else ""]
    return of_type(WORKFLOW_TYPE, " AND ".join(p for p in parts if p) or None)
