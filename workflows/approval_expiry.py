"""The timer that expires changes nobody approved in time (four eyes, workflows/approvals.py),
run by ``CardOrderWorkflow`` for as long as the order is open."""

from __future__ import annotations

import functools
from datetime import datetime

from temporalio import workflow

from contracts import card_order as api
from d1.order import Address
from security.sealing import WORKER
from workflows import approvals, audit
from workflows.follow_up import Follower


def _expiry_moved(st: api.OrderState, due: datetime) -> bool:
    return approvals.next_expiry(st) != due


async def expire_unapproved(st: api.OrderState, awaiting_addresses: dict[str, Address], follow: Follower) -> None:
    """Expire each change nobody approved in time; one timer, only while a change waits."""
    while True:
        due = approvals.next_expiry(st)
        if due is None:
            await workflow.wait_condition(lambda: approvals.next_expiry(st) is not None)
            continue
        wait = (due - workflow.now()).total_seconds()
        if wait > 0:
            try:
                await workflow.wait_condition(functools.partial(_expiry_moved, st, due), timeout=wait)
                continue  # approved, rejected or another change waits: look again
            except TimeoutError:
                pass
        for record in approvals.expire_due(st, workflow.now()):
            awaiting_addresses.pop(record.change_id, None)
            audit.action("approval", who=WORKER, result=audit.EXPIRED, change_id=record.change_id, reason=record.reason)
            follow.changed = True
