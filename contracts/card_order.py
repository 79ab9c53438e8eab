"""The card-order workflow's public contract: everything a caller needs to talk to it.

Nothing here holds clear card data. An order carries only :class:`D1Submission`: the D1
body whose ``encryptedData`` was encrypted for D1 at the issuer's edge (the starter), so
only D1 can read it. :class:`CardOrderInput` accepts no other shape: an unknown member
(a clear order, say) fails validation, and the workflow ends with ``InvalidInput``.

Every model hides input values in its validation errors: a payload that fails to decode
on a worker never prints card data or an address.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_serializer, model_validator

from contracts import messages
from contracts.activation import ActivationRecord
from contracts.messages import Message
from contracts.visibility import RUNNING, all_of, equals, of_type, quote, rfc3339
from d1.notifications import OperationNotification, ShipmentInfo
from d1.order import Address
from d1.statuses import ProductionStatus, production_rank

WORKFLOW_TYPE = "CardOrderWorkflow"
DEFAULT_TASK_QUEUE = "d1-card-orders"

# Signals
NOTIFICATION_SIGNAL = "d1_notification"  # one D1 operation update (Notification)
RECONCILE_SIGNAL = "reconcile_now"  # an operator asks for D1's status now (ReconcileRequest)
# Queries
VIEW_QUERY = "order_view"  # -> OrderView, card data masked
# Updates (pull & change, before shipment): ChangeRequest -> ChangeRecord
CANCEL_UPDATE: Final = "cancel"
ACCELERATE_UPDATE: Final = "accelerate"
REDIRECT_UPDATE: Final = "redirect"
ACCELERATE_AND_REDIRECT_UPDATE: Final = "accelerate_and_redirect"
# By pull & change type (D1's spelling: the update's name in capitals).
CHANGE_UPDATES = {
    name.upper(): name for name in (CANCEL_UPDATE, ACCELERATE_UPDATE, REDIRECT_UPDATE, ACCELERATE_AND_REDIRECT_UPDATE)
}

# Error types of the pull & change updates (``ApplicationError.type``).
CHANGE_REJECTED = "ChangeRejected"  # refused by the update's validator or handler: D1 not called
CHANGE_FAILED = "ChangeFailed"  # D1 refused the request (4xx) or stayed unreachable
# Four eyes on a new delivery address (workflows/approvals.py): ChangeDecision -> ChangeRecord.
APPROVE_CHANGE_UPDATE = "approve_change"  # a second operator approves: D1 is asked
REJECT_CHANGE_UPDATE = "reject_change"  # another operator rejects, or the requester withdraws


def workflow_id(issuer_id: str, issuer_request_id: str) -> str:
    """The idempotency key (issuerId + issuerRequestId) *is* the workflow id."""
    return f"card-order:{issuer_id}:{issuer_request_id}"


class ContractModel(BaseModel):
    """Unknown members are refused: a sealed object of another shape never reads as this one."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid")


class OrderTiming(ContractModel):
    """Durations the workflow waits, copied into each order at start (replay-safe)."""

    reconcile_after: timedelta = timedelta(hours=24)
    quiet_after_shipped: timedelta = timedelta(days=30)
    close_grace: timedelta = timedelta(minutes=10)
    delivered_shipment_statuses: list[str] = Field(default_factory=lambda: ["Delivered"])
    returned_shipment_statuses: list[str] = Field(default_factory=lambda: ["Returned"])
    # Retrying D1 submission stops after this long; the order then ends as SUBMIT_FAILED.
    submit_give_up_after: timedelta = timedelta(hours=24)
    # Retrying a pull & change call stops after this long; the change is then FAILED (a
    # change is urgent by nature: once the card ships it is pointless).
    change_give_up_after: timedelta = timedelta(minutes=10)
    # A message (signal, update, continue-as-new input) is valid this long after it was
    # issued, and may claim a time this far ahead of the workflow's clock (contracts/messages.py).
    message_max_age: timedelta = messages.MAX_AGE
    message_max_ahead: timedelta = messages.MAX_AHEAD
    # A carrier status among these, then quiet_after_shipped of silence: LOST_IN_TRANSIT.
    exception_shipment_statuses: list[str] = Field(default_factory=lambda: ["Exception"])
    # Announce the order's milestones (events/, docs/events.md). False for orders started
    # before events existed: their histories replay without the emit activity.
    events: bool = False


class OrderRef(ContractModel):
    """Identifiers of an order and its masked card: safe to show anywhere."""

    issuer_id: str
    card_id: str
    issuer_request_id: str
    consumer_id: str | None = None
    card_product_id: str | None = None
    masked_pan: str | None = None  # first 6 / last 4
    # None: not shipped (INSTANT, or CENTRAL without shipment): production is the end.
    shipment_type: str | None = None
    group_id: str | None = None
    bulk_order_id: str | None = None
    distribution_channel: str = "THALES"
    # D1's services.issuance and services.priority: the service level the order is measured by.
    issuance: str | None = None
    priority: str | None = None
    # A replacement or renewal (starter/replacement.py): the card it replaces, and why.
    replaces_card_id: str | None = None
    replacement_reason: str | None = None


class D1Submission(ContractModel):
    """The order as D1 receives it, built and encrypted at the issuer's edge.

    ``body`` is D1's JSON body: card data only inside ``encryptedData`` (a compact JWE
    for D1's key), never in clear (``d1.card_data_guard`` checks it at the edge and again
    before the worker sends it). Every retry sends this same body; D1 is idempotent on
    the ids."""

    body: dict[str, Any]
    # kid of the D1 encryption key the JWE was made for (key rotation diagnostics).
    encryption_kid: str


class ApprovalPolicy(ContractModel):
    """Four eyes on a new delivery address (the program's ``pullAndChange``, d1/program.py),
    copied into each order at start (replay-safe): a redirect waits for a second operator's
    approval unless ``four_eyes`` is off, and expires unapproved after ``expires_after``.
    An order started without it (before the setting existed) gets the safe default."""

    four_eyes: bool = True
    expires_after: timedelta = Field(default=timedelta(hours=24), gt=timedelta(0))


class BatchMembership(ContractModel):
    """The order is submitted to D1 with others, in one call (contracts/d1_batch.py): the
    workflow waits for its result instead of calling D1 itself."""

    batch_workflow_id: str
    encryption_kid: str


class CardOrderInput(Message):
    """The workflow's input; no other shape is accepted (an unknown member is an error).
    Sealed by the edge (first run) or the worker (continue-as-new)."""

    kind: Literal["card_order.start"] = messages.CARD_ORDER_START
    ref: OrderRef
    timing: OrderTiming = Field(default_factory=OrderTiming)
    # The first run of an order: what to send to D1 (alone), or the batch it goes out in.
    # Continue-as-new drops both.
    submission: D1Submission | None = None
    batch: BatchMembership | None = None
    # Carried across continue-as-new (with the clocks of the wait loop).
    state: OrderState | None = None
    last_progress_at: datetime | None = None
    shipment_changed_at: datetime | None = None
    approvals: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    # The new addresses of changes waiting for approval, by change id, carried across
    # continue-as-new: kept out of the order's view, which names the city and country only.
    awaiting_addresses: dict[str, Address] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _first_run_says_how_to_submit(self) -> CardOrderInput:
        if self.state is None and (self.submission is None) == (self.batch is None):
            raise ValueError("the first run of an order carries either its D1 submission or its D1 batch")
        return self


class Outcome(StrEnum):
    DELIVERED = "DELIVERED"
    RETURNED = "RETURNED"
    SHIPPED = "SHIPPED"  # quiet window elapsed after shipping without delivery confirmation
    REJECTED = "REJECTED"  # D1 refused the order request (4xx)
    # D1 could not decrypt encryptedData (CRYPTO_ERROR): made for a key D1 no longer has.
    CRYPTO_REJECTED = "CRYPTO_REJECTED"
    SUBMIT_FAILED = "SUBMIT_FAILED"  # D1 unreachable for longer than the give-up window
    DATA_EXCEPTION = "DATA_EXCEPTION"
    PRODUCTION_EXCEPTION = "PRODUCTION_EXCEPTION"
    CANCELED = "CANCELED"
    FAILED = "FAILED"  # operation FAILED without a more specific status
    # Produced and not shipped (INSTANT: handed over at the station; CENTRAL without shipment).
    PRODUCED = "PRODUCED"
    # A carrier exception, then silence for quiet_after_shipped: the card is presumed lost.
    LOST_IN_TRANSIT = "LOST_IN_TRANSIT"


class ChangeStatus(StrEnum):
    # A new delivery address waits for a second operator (workflows/approvals.py); D1 not called.
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    EXPIRED = "EXPIRED"  # not approved in time: D1 never called, the order goes on unchanged
    REJECTED = "REJECTED"  # rejected by another operator, or withdrawn by the requester
    REQUESTED = "REQUESTED"  # accepted by the workflow, D1 not called yet
    SENT = "SENT"  # D1 took the request (202); the personalization center's answer is pending
    ACCEPTED = "ACCEPTED"  # UPDATE_ORDER: accepted by the personalization center
    REFUSED = "REFUSED"  # UPDATE_ORDER: refused by the personalization center (e.g. too late)
    FAILED = "FAILED"  # D1 refused the request itself (4xx) or could not be reached in time


PENDING_CHANGE = frozenset({ChangeStatus.REQUESTED, ChangeStatus.SENT})


class ChangeRecord(ContractModel):
    """One pull & change request and what became of it (no address: where to, only)."""

    change_id: str
    type: str  # CANCEL, ACCELERATE, REDIRECT, ACCELERATE_AND_REDIRECT
    status: ChangeStatus = ChangeStatus.REQUESTED
    requested_at: str
    # Who asked: the sealer of the request ("operator:alice", "edge"), never the request's word.
    requested_by: str | None = None
    note: str | None = None  # the operator's words; never sent to D1
    redirected_to: str | None = None  # "city, country" of the new delivery address
    d1_operation_id: str | None = None
    reason: str | None = None  # D1's reason (refusal, acceptance) or why the request failed
    decided_at: str | None = None
    decided_at_status: str | None = None  # the production stage when the center decided
    # Four eyes (workflows/approvals.py): until when a second operator may approve, who
    # approved (and when), or who rejected or withdrew it. None for a change without approval.
    approval_expires_at: str | None = None
    approved_by: str | None = None
    approved_at: str | None = None
    rejected_by: str | None = None

    def in_words(self) -> str:
        """The change for people (the UI's details line, the CLI): who asked, who approved,
        until when it waits for a second operator."""
        words = f"{self.type} {self.status.value}"
        if self.redirected_to:
            words += f" to {self.redirected_to}"
        if self.requested_by:
            words += f", asked by {self.requested_by}"
        if self.status == ChangeStatus.AWAITING_APPROVAL and self.approval_expires_at:
            words += f", needs a second operator's approval before {self.approval_expires_at}"
        if self.approved_by:
            words += f", approved by {self.approved_by}"
        if self.rejected_by and self.status == ChangeStatus.REJECTED and not self.reason:
            words += f", rejected by {self.rejected_by}"
        if self.reason:
            words += f" ({self.reason})"
        return words


class TimelineEntry(ContractModel):
    key: str
    operation: str
    operation_status: str
    production_status: str | None = None
    shipment_status: str | None = None
    shipment_message: str | None = None
    tracking_number: str | None = None
    carrier: str | None = None
    reason: str | None = None
    error_code: str | None = None
    error: str | None = None
    d1_time: str
    source: str
    sort_rank: int
    sort_shipment_rank: int
    # UPDATE_ORDER entries: which pull & change, and the center's answer (ACCEPTED / REFUSED).
    change_type: str | None = None
    change_outcome: str | None = None


class OrderError(ContractModel):
    source: str  # "submit", "notification", "reconciliation"
    error_code: str | None = None
    error: str | None = None
    http_status: int | None = None


class OrderState(ContractModel):
    """What the order knows; changed only by the state machine (workflows/order_state.py)."""

    operation_id: str | None = None
    submitted: bool = False
    production_status: str | None = None
    production_rank: int = 0
    operation_status: str | None = None
    shipment: ShipmentInfo | None = None
    shipment_rank: int = 0
    due_date: str | None = None
    production_site: str | None = None
    outcome: Outcome | None = None
    outcome_reason: str | None = None
    errors: list[OrderError] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    unknown_statuses: list[str] = Field(default_factory=list)
    seen_keys: list[str] = Field(default_factory=list)
    # Ids of the messages this order accepted, the latest SEEN_MESSAGES (contracts/messages.py).
    seen_messages: list[str] = Field(default_factory=list)
    changes: list[ChangeRecord] = Field(default_factory=list)
    timeline_dropped: int = 0
    updates_applied: int = 0
    duplicates_ignored: int = 0
    reconciliations: int = 0
    # Service levels (workflows/service_levels.py): when the order was requested (None for an
    # order started before they were measured), shipped and ended; whether the card shipped
    # after the end of D1's due date, and by how many hours.
    requested_at: str | None = None
    shipped_at: str | None = None
    ended_at: str | None = None
    shipped_late: bool | None = None
    late_hours: float | None = None
    carrier_exceptions: int = 0  # carrier exception scans counted so far
    # D1's Card Activation call, when it came while the order ran (contracts/activation.py).
    activation: ActivationRecord | None = None

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def shipped(self) -> bool:
        return self.production_rank >= (production_rank(ProductionStatus.CARD_SHIPPED) or 0)

    @property
    def pending_change(self) -> ChangeRecord | None:
        return next((c for c in self.changes if c.status in PENDING_CHANGE), None)

    @property
    def cancel_accepted(self) -> bool:
        return any(c.type == "CANCEL" and c.status == ChangeStatus.ACCEPTED for c in self.changes)


class OrderView(ContractModel):
    workflow_id: str
    ref: OrderRef
    state: OrderState


class OrderResult(ContractModel):
    """What an order's run returns: how it ended, nothing more. The result is written once
    into the history (sealed); the view with its timeline is not repeated there: it stays
    readable by the ``order_view`` query after the end, for the namespace's retention
    (``CardOrders.wait`` in starter/api.py reads it so)."""

    workflow_id: str
    outcome: Outcome | None = None
    outcome_reason: str | None = None


# Members of D1's operation no workflow reads (workflows/order_state.py): the receiver routes by
# ``issuerRequestId`` before signalling, the rest is D1's bookkeeping. Left out of the signal,
# like every absent (None) member: each notification is a history event of its own.
_UNREAD_OPERATION_MEMBERS: dict[str, Any] = {
    "issuerRequestId": True,
    "inputFileName": True,
    "details": {"issuerRequestId": True, "inputFileName": True, "consumerId": True},
}


class Notification(Message):
    """Argument of the ``d1_notification`` signal: D1's operation as the receiver got it (D1's
    own JSON stays tolerant inside), for one card: the order refuses another card's. Sent
    with only what the workflows read (D1's unknown members kept: an ``UPDATE_ORDER``'s
    details carry the change's type that way)."""

    kind: Literal["d1_notification"] = messages.D1_NOTIFICATION
    operation: OperationNotification

    @field_serializer("operation")
    def _only_what_workflows_read(self, op: OperationNotification) -> dict[str, Any]:
        return op.model_dump(mode="json", exclude=_UNREAD_OPERATION_MEMBERS, exclude_none=True)


class ReconcileRequest(Message):
    """Argument of the ``reconcile_now`` signal: why (kept in the audit log). Who asked is
    the sealer (security/sealing.py), never a member a sender fills in."""

    kind: Literal["reconcile_now"] = messages.RECONCILE
    reason: str | None = Field(default=None, max_length=200)


ChangeKind = Literal["cancel", "accelerate", "redirect", "accelerate_and_redirect"]


class ChangeRequest(Message):
    """Argument of the pull & change updates (``cancel``, ``accelerate``, ``redirect``,
    ``accelerate_and_redirect``): the new address for the redirects, an operator note.
    ``kind`` is the update's name: a redirect's argument is no cancel's.
    Also accepts D1's spelling (``newDeliveryAddress``), ``deliveryAddress`` and ``reason``."""

    kind: ChangeKind

    new_delivery_address: Address | None = Field(
        default=None, validation_alias=AliasChoices("new_delivery_address", "newDeliveryAddress", "deliveryAddress")
    )
    # Why the change was asked (recorded in the order's view; never sent to D1).
    note: str | None = Field(default=None, max_length=200, validation_alias=AliasChoices("note", "reason"))


class ChangeDecision(Message):
    """Argument of ``approve_change`` and ``reject_change``: which waiting change, and why.
    Who decides is the sealer (security/sealing.py), never a member of this message."""

    kind: Literal["approve_change", "reject_change"]
    change_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,80}$")
    note: str | None = Field(default=None, max_length=200)


def orders_query(query: str | None = None) -> str:
    return of_type(WORKFLOW_TYPE, query)


def card_query(card_id: str, issuer_id: str | None = None) -> str:
    return all_of(equals("IssuerId", issuer_id) if issuer_id else None, equals("CardId", card_id)) or ""


def open_orders_of_card_query(issuer_id: str, card_id: str) -> str:
    """The card's running card orders (a tracking of the same card is another workflow type)."""
    return orders_query(f"{equals('IssuerId', issuer_id)} AND {equals('CardId', card_id)} AND {RUNNING}")


def group_query(group_id: str, issuer_id: str | None = None) -> str:
    return all_of(equals("ShipmentGroupId", group_id), equals("IssuerId", issuer_id) if issuer_id else None) or ""


def stuck_query(now: datetime | None = None, *, status: str = "CARD_PROD_ONGOING") -> str:
    """Running orders still in ``status`` although D1's due date has passed."""
    now = now or datetime.now(UTC)
    return f"{RUNNING} AND ProductionStatus = {quote(status)} AND DueDate < {quote(rfc3339(now))}"


def past_due_query(now: datetime | None = None) -> str:
    """Running orders not shipped although the end of D1's due date has passed. ``DueDate``
    holds a due *date* as its midnight (UTC), so its end is a day later (a due time, an
    URGENT order's, is then a day late here: workflows/service_levels.py has the exact rule)."""
    now = now or datetime.now(UTC)
    due_before = quote(rfc3339(now - timedelta(days=1)))
    return orders_query(f"{RUNNING} AND DueDate < {due_before} AND ShippedAt IS NULL AND OrderOutcome IS NULL")


# The stages an open order can be seen at in visibility (``ProductionStatus``; the transient
# statuses are never upserted, workflows/follow_up.py): "submitted" before D1's first news.
OPEN_STAGES = ("submitted", "DATA_PREPARED", "CARD_PROD_ON_HOLD", "CARD_PROD_ONGOING", "CARD_PROD_DONE", "CARD_SHIPPED")


def open_stage_query(stage: str) -> str:
    """Running orders without an outcome yet, at ``stage`` (one of :data:`OPEN_STAGES`)."""
    status = "ProductionStatus IS NULL" if stage == "submitted" else equals("ProductionStatus", stage)
    return orders_query(f"{RUNNING} AND OrderOutcome IS NULL AND {status}")


def rejected_since_query(since: datetime) -> str:
    """Orders D1 rejected since ``since``: closed since then, or still in their close grace."""
    return f'OrderOutcome = "REJECTED" AND ({RUNNING} OR CloseTime >= {quote(rfc3339(since))})'


CardOrderInput.model_rebuild()
