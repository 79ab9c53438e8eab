"""Four eyes on a new delivery address (pure: no Temporal, no I/O; ``now`` is passed in).

A change of delivery address is the classic way a payment card is stolen in the post, so a
REDIRECT or ACCELERATE_AND_REDIRECT does not go to D1 when it is asked: the order records it
as AWAITING_APPROVAL, and a *second, different* operator approves it (the ``approve_change``
update) before D1 is called. Unapproved after the program's expiry (24 h by default) it
becomes EXPIRED and the order goes on unchanged. The requester may withdraw it, another
operator may reject it (REJECTED). A program turns this off with
``pullAndChange.fourEyesAddressChange: false`` (d1/program.py); the choice is copied into each
order at start (:class:`contracts.card_order.ApprovalPolicy`).

Identities are the sealers the payload codec reports (security/sealing.py): ``operator:alice``
is Alice, proven by her key, never a name a message claims. Only a named operator approves:
an issuer system (``edge``) may ask for a redirect on a customer's behalf, but the approval is
a person's act, attributable to one person (PCI DSS requirements 8 and 10).
"""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.card_order import ApprovalPolicy, ChangeRecord, ChangeStatus, OrderState
from d1.patterns import REDIRECTING_TYPES
from security.sealing import OPERATOR, role_of

# The change types under four eyes: the ones that carry a new delivery address.
FOUR_EYES_TYPES = REDIRECTING_TYPES
# Who may send ``approve_change``: named operators only (never an issuer system).
APPROVERS = (OPERATOR,)


def needs_approval(kind: str, policy: ApprovalPolicy) -> bool:
    return policy.four_eyes and kind in FOUR_EYES_TYPES


def same_person(a: str | None, b: str | None) -> bool:
    """Operator names compare without case: ``operator:Alice`` is not a second pair of eyes
    for ``operator:alice``."""
    return a is not None and b is not None and a.casefold() == b.casefold()


def awaiting(st: OrderState) -> list[ChangeRecord]:
    return [c for c in st.changes if c.status == ChangeStatus.AWAITING_APPROVAL]


def find(st: OrderState, change_id: str) -> ChangeRecord | None:
    return next((c for c in st.changes if c.change_id == change_id), None)


def expires_at(record: ChangeRecord) -> datetime | None:
    if record.approval_expires_at is None:
        return None
    moment = datetime.fromisoformat(record.approval_expires_at)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def hold(record: ChangeRecord, *, now: datetime, policy: ApprovalPolicy) -> None:
    """Keep a new change waiting for a second operator until ``now`` + the policy's expiry."""
    record.status = ChangeStatus.AWAITING_APPROVAL
    record.approval_expires_at = (now + policy.expires_after).isoformat()


def blocking(st: OrderState, kind: str) -> str | None:
    """Why ``kind`` cannot be asked while a change waits for approval (None: it can). A cancel
    always can: stopping a card is never what four eyes guard against."""
    if kind == "CANCEL":
        return None
    for record in awaiting(st):
        return (
            f"the {record.type} request {record.change_id} is waiting for a second operator's approval "
            f"(until {record.approval_expires_at}); approve, reject or withdraw it first"
        )
    return None


def approval_problem(st: OrderState, change_id: str, approver: str | None, now: datetime) -> str | None:
    """Why ``approver`` cannot approve ``change_id`` now (None: they can)."""
    record = find(st, change_id)
    problem = _decidable(record, change_id, now)
    if problem is not None:
        return problem
    assert record is not None
    if role_of(approver) != OPERATOR:
        return (
            f"only a named operator can approve an address change (this request was sealed by {approver or 'nobody'})"
        )
    if same_person(approver, record.requested_by):
        return f"{approver} asked for {change_id}: a second, different operator must approve it"
    return None


def approve(record: ChangeRecord, approver: str, now: datetime) -> None:
    """Approved: the change goes to D1 as any other (REQUESTED, then SENT)."""
    record.status = ChangeStatus.REQUESTED
    record.approved_by = approver
    record.approved_at = now.isoformat()


def rejection_problem(st: OrderState, change_id: str, who: str | None, now: datetime) -> str | None:
    """Why ``who`` cannot reject (or, the requester, withdraw) ``change_id`` now."""
    record = find(st, change_id)
    problem = _decidable(record, change_id, now)
    if problem is not None:
        return problem
    assert record is not None
    if role_of(who) != OPERATOR and not same_person(who, record.requested_by):
        return f"only a named operator or the requester can reject {change_id} (sealed by {who or 'nobody'})"
    return None


def reject(record: ChangeRecord, who: str, now: datetime, reason: str | None = None) -> None:
    withdrawn = same_person(who, record.requested_by)
    record.status = ChangeStatus.REJECTED
    record.rejected_by = who
    record.decided_at = now.isoformat()
    record.reason = reason or ("withdrawn by the requester" if withdrawn else f"rejected by {who}")


def next_expiry(st: OrderState) -> datetime | None:
    """When the first waiting change expires (None: nothing waits)."""
    moments = [m for m in map(expires_at, awaiting(st)) if m is not None]
    return min(moments) if moments else None


def expire_due(st: OrderState, now: datetime) -> list[ChangeRecord]:
    """Expire every waiting change whose approval window has passed; the ones expired."""
    due = [c for c in awaiting(st) if (m := expires_at(c)) is not None and m <= now]
    for record in due:
        record.status = ChangeStatus.EXPIRED
        record.decided_at = now.isoformat()
        record.reason = "not approved by a second operator in time; D1 was not asked"
    return due


def close_awaiting(st: OrderState, now: datetime) -> list[ChangeRecord]:
    """The order finished: whatever still waits for approval expires with it."""
    closing = awaiting(st)
    for record in closing:
        record.status = ChangeStatus.EXPIRED
        record.decided_at = now.isoformat()
        record.reason = "the order finished before a second operator approved; D1 was not asked"
    return closing


def _decidable(record: ChangeRecord | None, change_id: str, now: datetime) -> str | None:
    if record is None:
        return f"this order has no change {change_id}"
    if record.status != ChangeStatus.AWAITING_APPROVAL:
        return f"{change_id} is not waiting for approval (it is {record.status.value})"
    moment = expires_at(record)
    if moment is not None and moment <= now:
        return f"{change_id} expired unapproved at {record.approval_expires_at}"
    return None
