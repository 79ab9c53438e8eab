"""Asking D1 for an accepted pull & change (``CardOrderWorkflow``): the call, and what its
answer makes of the change's record (SENT, or FAILED with D1's reason)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ActivityError, ApplicationError

from activities import contract as acts
from contracts import card_order as api
from d1.order import Address
from workflows import audit
from workflows.follow_up import Follower, call_d1
from workflows.outcomes import call_failure


async def send_change(
    record: api.ChangeRecord, address: Address | None, ref: api.OrderRef, timing: api.OrderTiming, follow: Follower
) -> api.ChangeRecord:
    """Ask D1 for the change; returns once D1 took it (SENT), raises ChangeFailed otherwise."""
    kind = record.type
    name = api.CHANGE_UPDATES.get(kind, kind)
    body: dict[str, object] = {"type": kind}
    if address is not None:
        body["newDeliveryAddress"] = address.model_dump(mode="json", exclude_none=True)
    try:
        result = await call_d1(
            acts.REQUEST_PULL_AND_CHANGE,
            acts.PullAndChangeInput(
                issuer_id=ref.issuer_id,
                card_id=ref.card_id,
                issuer_request_id=ref.issuer_request_id,
                change_id=record.change_id,
                body=body,
            ),
            acts.PullAndChangeResult,
            start_to_close=timedelta(seconds=30),
            give_up_after=timing.change_give_up_after,
            summary=f"Pull & change {kind}",
        )
    except ActivityError as err:
        info = call_failure(err).refusal
        record.status = api.ChangeStatus.FAILED
        record.reason = (
            f"D1 refused the request: {info.get('errorCode') or ''} {info.get('error') or ''}".strip()
            if info is not None
            else "D1 could not be reached in time"
        )
        follow.changed = True
        audit.action(
            name, who=record.requested_by, result=audit.FAILED, change_id=record.change_id, reason=record.reason
        )
        raise ApplicationError(f"{kind} failed: {record.reason}", type=api.CHANGE_FAILED, non_retryable=True) from None
    if record.d1_operation_id is None:
        record.d1_operation_id = result.operation_id
    if record.status == api.ChangeStatus.REQUESTED:  # the outcome may already have arrived
        record.status = api.ChangeStatus.SENT
    follow.changed = True
    audit.action(name, who=record.requested_by, result=audit.SENT, change_id=record.change_id)
    return record
