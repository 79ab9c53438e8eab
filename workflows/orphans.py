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
    from contracts import orphan_inbox as api
    from contracts.orphan_inbox import OrphanEntry, OrphanInbox
    from workflows.inputs import read_input

KEEP_ENTRIES = 500
ENTRIES_PER_RUN = 2_000


@workflow.defn(name=api.WORKFLOW_TYPE)
class OrphanNotificationsWorkflow:
    @workflow.init
    def __init__(self, raw: RawValue) -> None:
        # A bad input ends the inbox (the receiver's next record starts a new one) instead
        # of failing every task while records pile up unread (workflows/inputs.py).
        self._raw_input = read_input(raw, OrphanInbox)
        self._inbox = (self._raw_input.value or OrphanInbox()).model_copy(deep=True)
        self._this_run = 0

    @workflow.signal(name=api.RECORD_SIGNAL)
    def record(self, entry: OrphanEntry | None = None) -> None:
        if entry is None:  # no authenticated argument (a client without the product's keys)
            workflow.logger.warning("refused %s without an authenticated argument", api.RECORD_SIGNAL)
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
        workflow.continue_as_new(self._inbox)
