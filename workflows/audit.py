"""The audit line of an operator action, written by the workflow that took (or refused) it.

Written here, in the worker, because only here is the actor known for certain: the payload
codec proved who sealed the request (security/sealing.py), whereas a line written by the CLI
would sit on the operator's own machine and say what the operator's process chose to say.
The ``audit`` logger goes through Temporal's workflow logger adapter, which stays silent
while a workflow replays its history, so an action is logged when it happens and not again
when a worker rebuilds the workflow. A workflow task that fails after the line was written
runs again and may repeat it: the update id tells repeats apart. The worker sends the
``audit`` logger to an append-only file of JSON lines (observability/audit.py).
"""

from __future__ import annotations

import logging

from temporalio import workflow

AUDIT_LOGGER = "audit"
# Results: a signal taken or refused; a change waiting for approval, approved, sent to D1 (D1
# took it), failed (D1 refused it or stayed unreachable), expired unapproved.
ACCEPTED = "ACCEPTED"
REFUSED = "REFUSED"
AWAITING_APPROVAL = "AWAITING_APPROVAL"
APPROVED = "APPROVED"
SENT = "SENT"
FAILED = "FAILED"
EXPIRED = "EXPIRED"

_log = workflow.LoggerAdapter(logging.getLogger(AUDIT_LOGGER), None)
_log.workflow_info_on_message = False  # the line carries the workflow id itself


def action(what: str, *, who: str | None, result: str, change_id: str | None = None, reason: str | None = None) -> None:
    """One operator action: who (the sealer), what (the signal or update), on which order,
    when (the workflow's clock), and the result (ACCEPTED, REFUSED, AWAITING_APPROVAL, ...)."""
    update = workflow.current_update_info()
    entry = {
        "at": workflow.now().isoformat(),
        "who": who or "unknown",
        "action": what,
        "workflow_id": workflow.info().workflow_id,
        "change_id": change_id,
        "result": result,
        "reason": reason,
        "update_id": update.id if update is not None else None,
    }
    _log.info(
        "%s %s on %s by %s: %s",
        what,
        change_id or "-",
        entry["workflow_id"],
        entry["who"],
        result,
        extra={"audit": entry},
    )
