"""``OrphanNotificationsWorkflow``: where notifications for closed or unknown orders go.

D1 may notify about an order after it closed (a late carrier scan) or about a card the
product never ordered. Signalling a closed workflow fails, and dropping the update would
lose a fact an operator may need, so the receiver records each one here
(contracts/orphan_inbox.py). The inbox continues-as-new to stay small.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from contracts import messages
    from contracts import orphan_inbox as api
    from contracts.orphan_inbox import OrphanEntry, OrphanInbox
    from workflows.inputs import read_input, start_roles
    from workflows.messages import INBOX_STARTERS, MISSING, RECORDERS, Gate, Window, stamp

KEEP_ENTRIES = 500
ENTRIES_PER_RUN = 2_000


@workflow.defn(name=api.WORKFLOW_TYPE)
class OrphanNotificationsWorkflow:
    @workflow.init
    def __init__(self, raw: RawValue) -> None:
        # A bad input ends the inbox (the receiver's next record starts a new one) instead
        # of failing every task while records pile up unread (workflows/inputs.py).
        self._raw_input = read_input(
            raw, OrphanInbox, kind=messages.ORPHAN_INBOX_START, roles=start_roles(INBOX_STARTERS)
        )
        self._inbox = (self._raw_input.value or OrphanInbox()).model_copy(deep=True)
        self._this_run = 0
        issuer_id = workflow.info().workflow_id.rpartition(":")[2]
        self._gate = Gate(
            issuer_id=issuer_id, window=Window(messages.MAX_AGE, messages.MAX_AHEAD), seen=self._inbox.seen_messages
        )

    @workflow.signal(name=api.RECORD_SIGNAL)
    def record(self, raw: RawValue = MISSING) -> None:
        entry = self._gate.take(api.RECORD_SIGNAL, raw, OrphanEntry, RECORDERS, messages.ORPHAN_RECORD)
        if entry is None:
            return
        self._inbox.entries.append(entry)
        del self._inbox.entries[:-KEEP_ENTRIES]
        self._inbox.total += 1
        self._this_run += 1
        workflow.set_current_details(
            f"**Notifications for closed or unknown orders:** {self._inbox.total}  \n"
            f"**Latest:** card {entry.card_id}, {entry.production_status or entry.operation}"
            f"{' / ' + entry.shipment_status if entry.shipment_status else ''} ({entry.reason}) at {entry.received_at}"
        )

    @workflow.query(name=api.RECENT_QUERY)
    def recent(self) -> OrphanInbox:
        return self._inbox

    @workflow.run
    async def run(self, raw: RawValue) -> None:
        self._raw_input.check(OrphanInbox)
        await workflow.wait_condition(
            lambda: self._this_run >= ENTRIES_PER_RUN or workflow.info().is_continue_as_new_suggested()
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._inbox.model_copy(update=stamp()))
