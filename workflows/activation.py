"""D1's Card Activation, as the workflows record it (contracts/activation.py).

:func:`decide` is what the order's ``check_activation`` update answers: how the activation
stands against the card's delivery, from the order's own state (every notification that
reached its history before the update is in it); a refusal is recorded there and then, an
accepted activation once the bank confirmed it (signal ``card_activated``).
:func:`record_on_order` is what both do: the activation joins the order's view and timeline
once, and its search attributes. The
``CardActivationWorkflow`` is the card's activation record, for the usual case of an
activation after the order closed: its input is the record, its result the same record,
its search attributes (set by the receiver at start) what operators filter on. When the
order did not announce the activation (closed, or past its outcome), the record raises the
order's event for it (events/from_order.py ``activation_events``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts import activation as api
    from contracts import messages
    from contracts import search_attributes as sa
    from contracts.activation import ActivationCheck, ActivationFlag, ActivationRecord
    from contracts.card_order import OrderRef, OrderState, Outcome, TimelineEntry
    from events import contract as events_api
    from events.from_order import activation_events, activation_subject
    from workflows.events_out import EventsOut
    from workflows.inputs import read_input, start_roles
    from workflows.messages import ACTIVATORS

TIMELINE_OPERATION = "ACTIVATE"  # D1's operation name for a card activation (notifications.md)


def decide(
    state: OrderState, ref: OrderRef, check: ActivationCheck, delivered_statuses: frozenset[str]
) -> ActivationRecord:
    """The activation as the order sees it now. A repeat of an accepted activation keeps its
    first flag (D1's call is idempotent); a refusal is recorded here (the bank is not asked)."""
    shipment = state.shipment.status if state.shipment else None
    delivered = state.outcome == Outcome.DELIVERED or shipment in delivered_statuses
    accepted = state.activation if state.activation is not None and not _refused(state.activation.flag) else None
    if accepted is not None:
        flag = accepted.flag
    elif delivered:
        flag = ActivationFlag.ACTIVATED
    else:
        flag = (
            ActivationFlag.REFUSED_BEFORE_DELIVERY if check.refuse_before_delivery else ActivationFlag.BEFORE_DELIVERY
        )
    outcome = state.outcome.value if state.outcome is not None else None
    record = ActivationRecord(
        issuer_id=check.issuer_id,
        card_id=check.card_id,
        activated_at=check.activated_at,
        flag=flag,
        order_workflow_id=workflow.info().workflow_id,
        order_stage=api.stage_line(outcome, state.production_status, shipment),
        issuer_request_id=ref.issuer_request_id,
    )
    if _refused(flag):
        record_on_order(state, record)
    return record


def answer(record: ActivationRecord) -> str:
    """The update's outcome: the receiver holds no readers' key, so a flag other than ACTIVATED
    is told by the failure's type, which stays in clear (contracts/activation.py)."""
    if record.flag != ActivationFlag.ACTIVATED:
        raise ApplicationError(
            f"activation {record.flag.value} (order at {record.order_stage})",
            type=record.flag.value,
            non_retryable=True,
        )
    return record.flag.value


def _refused(flag: ActivationFlag) -> bool:
    return flag == ActivationFlag.REFUSED_BEFORE_DELIVERY


def record_on_order(state: OrderState, record: ActivationRecord) -> bool:
    """Record the activation on the order; False for a repeat (D1's call is idempotent). A
    refusal followed by an accepted activation (the card delivered since) is recorded too."""
    previous = state.activation
    if not api.supersedes(record.flag, [previous.flag.value] if previous is not None else None):
        return False
    state.activation = record
    last = state.timeline[-1] if state.timeline else None
    state.timeline.append(
        TimelineEntry(
            key=api.timeline_key(record.flag),
            operation=TIMELINE_OPERATION,
            operation_status="FAILED" if record.flag == api.ActivationFlag.REFUSED_BEFORE_DELIVERY else "SUCCESSFUL",
            production_status=state.production_status,
            shipment_status=state.shipment.status if state.shipment else None,
            reason=_reason(record),
            d1_time=record.activated_at,
            source="activation",
            # After every D1 step seen so far: an activation is news about the card, not a step.
            sort_rank=last.sort_rank if last else 0,
            sort_shipment_rank=last.sort_shipment_rank if last else 0,
        )
    )
    workflow.upsert_search_attributes(
        [
            sa.ACTIVATED_AT.value_set(datetime.fromisoformat(record.activated_at)),
            sa.ACTIVATION.value_set([record.flag.value]),
        ]
    )
    return True


def _reason(record: ActivationRecord) -> str:
    return {
        api.ActivationFlag.ACTIVATED: "activated by the cardholder (D1 Card Activation)",
        api.ActivationFlag.BEFORE_DELIVERY: f"activated before delivery (order at {record.order_stage or 'unknown'})",
        api.ActivationFlag.REFUSED_BEFORE_DELIVERY: (
            f"activation refused: not delivered yet (order at {record.order_stage or 'unknown'})"
        ),
    }[record.flag]


@workflow.defn(name=api.WORKFLOW_TYPE)
class CardActivationWorkflow:
    """One card's activation record; a repeat of the same activation finds it (receiver/activation.py)."""

    @workflow.run
    async def run(self, raw: RawValue) -> dict[str, object]:
        opened = read_input(raw, ActivationRecord, kind=messages.CARD_ACTIVATION_START, roles=start_roles(ACTIVATORS))
        record = opened.check(ActivationRecord)
        workflow.set_current_details(f"**Activation:** {record.flag.value}  \n{_reason(record)}")
        subject = activation_subject(record)
        if subject is not None:
            # The order closed before it could announce the activation: the bank learns of it
            # from here, through the issuer's hub like the order's own events (docs/events.md).
            # Every event carries the card's masked PAN; the receiver that started this record
            # never reads the order's data, the worker does (events/activities.py).
            masked_pan = await workflow.execute_local_activity(
                events_api.ORDER_MASKED_PAN,
                subject.workflow_id,
                result_type=str | None,  # type: ignore[arg-type]
                start_to_close_timeout=timedelta(seconds=30),
            )
            subject = subject.model_copy(update={"masked_pan": masked_pan})
            events_out = EventsOut(subject, on=True, end_statuses=())
            events_out.announce(activation_events(subject, record, now=workflow.now()))
            await events_out.drained()
        # Its JSON, not the message: a result is for readers (security/sealing.py READER).
        return record.model_dump(mode="json")
