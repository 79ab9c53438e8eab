"""The checks on a pull & change request and on a decision about a waiting change, before
``CardOrderWorkflow`` accepts either: who sealed it, and whether the order allows it now
(workflows/change_rules.py, workflows/approvals.py). A refusal is audited and raised."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from contracts import card_order as api
from workflows import approvals, audit
from workflows.change_rules import change_problem
from workflows.messages import CHANGERS, Gate, Opened, refused_update


def check_change(
    gate: Gate, state: api.OrderState, ref: api.OrderRef, kind: str, raw: RawValue
) -> Opened[api.ChangeRequest]:
    """The opened request for a change of ``kind``; refused when the order cannot take it."""
    name = api.CHANGE_UPDATES[kind]
    opened = gate.open(name, raw, api.ChangeRequest, CHANGERS, name)
    if opened.refusal is not None or opened.value is None:
        audit.action(name, who=opened.sealer, result=audit.REFUSED, reason=opened.refusal or "invalid")
        raise refused_update(name, opened.refusal or "invalid")
    req = opened.value
    problem = change_problem(state, ref, kind, has_address=req.new_delivery_address is not None) or approvals.blocking(
        state, kind
    )
    if problem is not None:
        audit.action(name, who=opened.sealer, result=audit.REFUSED, reason=problem)
        raise ApplicationError(problem, type=api.CHANGE_REJECTED, non_retryable=True)
    return opened


def check_decision(
    gate: Gate, state: api.OrderState, ref: api.OrderRef, name: str, raw: RawValue
) -> tuple[api.ChangeDecision, str, api.ChangeRecord]:
    """The decision on a waiting change, its sealer and the change; refused (audited) otherwise."""
    roles = approvals.APPROVERS if name == api.APPROVE_CHANGE_UPDATE else CHANGERS
    opened = gate.open(name, raw, api.ChangeDecision, roles, name)
    decision = opened.value
    if opened.refusal is not None or decision is None:
        audit.action(name, who=opened.sealer, result=audit.REFUSED, reason=opened.refusal or "invalid")
        raise refused_update(name, opened.refusal or "invalid")
    now, st = workflow.now(), state
    if name == api.APPROVE_CHANGE_UPDATE:
        problem = approvals.approval_problem(st, decision.change_id, opened.sealer, now)
    else:
        problem = approvals.rejection_problem(st, decision.change_id, opened.sealer, now)
    record = approvals.find(st, decision.change_id)
    if problem is None and record is not None and name == api.APPROVE_CHANGE_UPDATE:
        # The order moved on while the change waited (shipped, canceled, another change).
        problem = change_problem(st, ref, record.type, has_address=True)
    if problem is not None or record is None or opened.sealer is None:
        problem = problem or "no sealer to name"
        audit.action(name, who=opened.sealer, result=audit.REFUSED, change_id=decision.change_id, reason=problem)
        raise ApplicationError(problem, type=api.CHANGE_REJECTED, non_retryable=True)
    return decision, opened.sealer, record
