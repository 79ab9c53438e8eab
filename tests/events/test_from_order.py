"""Which events a card's state changes produce (events/from_order.py): pure, no Temporal."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.card_order import ChangeRecord, ChangeStatus, OrderRef, OrderState, Outcome
from events.asyncapi import DOCUMENT, render
from events.catalogue import ALL_TYPES, DATA_MEMBERS, Event
from events.from_order import Announced, new_events, order_subject
from tests.support.notifications import happy_sequence, operation, parsed
from workflows.order_state import apply

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
REF = OrderRef(issuer_id="ISS", card_id="card-1", issuer_request_id="req-1", masked_pan="411111******1111")
SUBJECT = order_subject("card-order:ISS:req-1", REF)
HAPPY = [
    "order.created",
    "order.submitted",
    *["order.production_status_changed"] * 5,
    "order.shipped",
    "order.shipment_updated",
    "order.shipment_updated",
    "order.delivered",
]


def announce(state: OrderState, done: Announced) -> list[Event]:
    return catalogued(new_events(SUBJECT, state, done, now=NOW))


def catalogued(events: list[Event]) -> list[Event]:
    """Every event is of a catalogued type and carries only the data members its type lists."""
    for e in events:
        assert e.type in ALL_TYPES and set(e.data) <= set(DATA_MEMBERS[e.type]), (e.type, e.data)
    return events


def submitted() -> OrderState:
    return OrderState(submitted=True, operation_id="op-1")


def test_a_delivered_order_announces_each_milestone_once() -> None:
    state, done, out = submitted(), Announced(), []
    for op in parsed(happy_sequence()):
        apply(state, op, source="notification")
        out += announce(state, done)
    assert [e.type for e in out] == HAPPY
    assert announce(state, done) == []  # nothing new: nothing announced
    assert len({e.id for e in out}) == len(out)
    shipped = next(e for e in out if e.type == "order.shipped")
    assert shipped.data == {
        "carrier": "dhl",
        "tracking_number": "TRACK123",
        "shipment_status": "InfoReceived",
        "message": "carrier says InfoReceived",
    }
    assert shipped.occurred_at == "2026-03-01T09:15:02.120Z"  # D1's time
    assert shipped.emitted_at == NOW.isoformat()
    produced = [e.data["production_status"] for e in out if e.type == "order.production_status_changed"]
    assert produced[1] == "DATA_PREPARED"
    due = next(e for e in out if e.data.get("production_status") == "DATA_PREPARED")
    assert due.data["due_date"] == "2026-03-02"
    assert {e.type for e in out} <= set(ALL_TYPES)


def test_no_card_data_name_or_address_in_an_event() -> None:
    state, done = submitted(), Announced()
    for op in parsed(happy_sequence()):
        apply(state, op, source="notification")
    state.changes.append(
        ChangeRecord(change_id="redirect-1", type="REDIRECT", requested_at="t", redirected_to="Lyon, FR")
    )
    body = " ".join(e.body() for e in announce(state, done))
    assert "4111111111111111" not in body and "411111******1111" in body
    assert "Lyon, FR" in body  # city and country at most: the change record holds nothing more
    for field in Event.model_fields:
        assert field not in {"name", "address", "pan", "exp", "cvv"}


@settings(max_examples=60)
@given(st.permutations(range(9)), st.lists(st.integers(1, 4), min_size=9, max_size=9))
def test_any_arrival_order_and_batching_announces_forward_only_once(order: list[int], rounds: list[int]) -> None:
    """Notifications in any order, observed after any number of them: each event once, the
    production statuses announced only ever move forward, the end once and last."""
    ops = parsed(happy_sequence())
    state, done, out = submitted(), Announced(), []
    pending = 0
    for i, index in enumerate(order):
        apply(state, ops[index], source="notification")
        pending += 1
        if pending >= rounds[i]:
            out += announce(state, done)
            pending = 0
    out += announce(state, done)
    assert len({e.id for e in out}) == len(out)
    kinds = [e.type for e in out]
    assert kinds[:2] == ["order.created", "order.submitted"]
    assert kinds.count("order.delivered") == 1 and kinds[-1] == "order.delivered"
    statuses = [e.data["production_status"] for e in out if e.type == "order.production_status_changed"]
    ranks = [
        ["CARD_PROD_REQUESTED", "DATA_PREPARED", "CARD_PROD_READY", "CARD_PROD_ONGOING", "CARD_PROD_DONE"].index(s)
        for s in statuses
    ]
    assert ranks == sorted(set(ranks))


def test_a_fresh_start_announces_the_same_facts_under_the_same_ids() -> None:
    """After a continue-as-new the workflow starts from nothing announced: the copies carry
    the ids a consumer already has, so it drops them."""
    state, done = submitted(), Announced()
    for op in parsed(happy_sequence()):
        apply(state, op, source="notification")
    first = announce(state, done)
    again = announce(state, Announced())
    assert {e.id for e in again} == {e.id for e in first}


def test_changes_and_refusals() -> None:
    state, done = submitted(), Announced()
    change = ChangeRecord(change_id="cancel-1", type="CANCEL", requested_at="2026-12-07T08:00:00+00:00")
    state.changes.append(change)
    assert [e.type for e in announce(state, done)] == ["order.created", "order.submitted", "order.change_requested"]
    change.status = ChangeStatus.SENT
    change.d1_operation_id = "op-9"
    assert [e.data.get("operation_id") for e in announce(state, done)] == ["op-9"]
    change.status, change.reason = ChangeStatus.ACCEPTED, "before production"
    decided = announce(state, done)
    assert [(e.type, e.data["decision"]) for e in decided] == [("order.change_decided", "ACCEPTED")]
    apply(state, parsed([operation("CARD_PROD_CANCELED", op_status="SUCCESSFUL")])[0], source="notification")
    assert [e.type for e in announce(state, done)] == ["order.production_status_changed", "order.canceled"]

    rejected, done = OrderState(submitted=True), Announced()
    from contracts.card_order import OrderError

    rejected.errors.append(OrderError(source="submit", error_code="INVALID_FIELD", error="$.deliveryAddress.zip"))
    rejected.outcome = Outcome.REJECTED
    events = announce(rejected, done)
    assert [e.type for e in events] == ["order.created", "order.rejected"]  # no operation id: not submitted
    assert events[-1].data["error_code"] == "INVALID_FIELD" and events[-1].data["error"] == "$.deliveryAddress.zip"


def test_an_address_change_announces_request_approval_sending_and_decision() -> None:
    """Four eyes (workflows/approvals.py): asked by one operator, approved by another, then sent."""
    state, done = submitted(), Announced()
    announce(state, done)
    change = ChangeRecord(
        change_id="redirect-1",
        type="REDIRECT",
        status=ChangeStatus.AWAITING_APPROVAL,
        requested_at="2026-12-07T08:00:00+00:00",
        requested_by="operator:alice",
        approval_expires_at="2026-12-08T08:00:00+00:00",
        redirected_to="Boston, US",
    )
    state.changes.append(change)
    [asked] = catalogued(announce(state, done))
    assert asked.type == "order.change_requested" and asked.data["awaiting_approval"] is True
    assert asked.data["requested_by"] == "operator:alice" and "address" not in str(asked.data).lower()
    change.status, change.approved_by, change.approved_at = ChangeStatus.REQUESTED, "operator:bob", "2026-12-07T09:00Z"
    [approved] = catalogued(announce(state, done))
    assert (approved.type, approved.data["approved_by"]) == ("order.change_approved", "operator:bob")
    change.status, change.d1_operation_id = ChangeStatus.SENT, "op-7"
    assert [e.type for e in announce(state, done)] == ["order.change_sent"]
    assert announce(state, done) == []

    expiring, done = submitted(), Announced()
    expiring.changes.append(
        change.model_copy(update={"status": ChangeStatus.EXPIRED, "approved_by": None, "d1_operation_id": None})
    )
    types = [(e.type, e.data.get("decision")) for e in catalogued(announce(expiring, done))]
    assert types[-2:] == [("order.change_requested", None), ("order.change_decided", "EXPIRED")]  # never sent


def test_a_lost_card_is_not_delivered_and_an_early_activation_is_its_own_event() -> None:
    from contracts.activation import ActivationFlag, ActivationRecord
    from workflows.activation import record_on_order

    state, done = submitted(), Announced()
    announce(state, done)
    state.outcome = Outcome.LOST_IN_TRANSIT
    [lost] = catalogued(announce(state, done))
    assert (lost.type, lost.data["outcome"]) == ("order.not_delivered", "LOST_IN_TRANSIT")

    state, done = submitted(), Announced()
    announce(state, done)
    record = ActivationRecord(
        issuer_id="ISSUER",
        card_id="card-1",
        activated_at="2026-12-07T10:00:00+00:00",
        flag=ActivationFlag.BEFORE_DELIVERY,
        order_stage="CARD_PROD_ONGOING",
    )
    with_attributes_off(lambda: record_on_order(state, record))
    [early] = catalogued(announce(state, done))
    assert early.type == "order.card_activated_before_delivery"
    assert early.data == {"activation": "ACTIVATED_BEFORE_DELIVERY", "order_stage": "CARD_PROD_ONGOING"}


def test_an_activation_after_the_order_closed_is_the_event_the_order_would_have_raised() -> None:
    from contracts.activation import ActivationFlag, ActivationRecord
    from events.from_order import activation_events, activation_subject
    from workflows.activation import record_on_order

    record = ActivationRecord(
        issuer_id="ISS",
        card_id="card-1",
        activated_at="2026-12-07T10:00:00+00:00",
        flag=ActivationFlag.ACTIVATED,
        order_workflow_id=SUBJECT.workflow_id,
        order_stage="DELIVERED / CARD_SHIPPED / Delivered",
        issuer_request_id="req-1",
        cms_reference="cms-42",
    )
    # The running order, had it taken the activation: one event, after its others.
    state, done = submitted(), Announced()
    announce(state, done)
    with_attributes_off(lambda: record_on_order(state, record))
    [on_order] = catalogued(announce(state, done))

    # The activation record, the order closed: the same fact, the same id, type, time and data.
    subject = activation_subject(record)
    assert subject is not None
    later = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
    [after] = catalogued(activation_events(subject, record, now=later))
    assert (after.id, after.type, after.occurred_at, after.data) == (
        on_order.id,
        on_order.type,
        on_order.occurred_at,
        on_order.data,
    )
    assert after.type == "order.card_activated" and after.occurred_at == record.activated_at
    assert after.emitted_at == later.isoformat()
    assert (after.workflow_id, after.issuer_request_id, after.card_id) == (SUBJECT.workflow_id, "req-1", "card-1")
    assert "cms-42" not in after.body()  # the bank's reference is the bank's
    assert activation_events(subject, record, now=NOW) == [after.model_copy(update={"emitted_at": NOW.isoformat()})]

    # Flagged the same way as on the order; a refusal and a later acceptance are two facts.
    refused = record.model_copy(update={"flag": ActivationFlag.REFUSED_BEFORE_DELIVERY, "order_stage": "RETURNED"})
    [no] = catalogued(activation_events(subject, refused, now=later))
    assert no.type == "order.card_activated_before_delivery" and no.id != after.id
    assert no.data == {"activation": "REFUSED_BEFORE_DELIVERY", "order_stage": "RETURNED"}

    # The order announces it itself (taken before its outcome), or there is no order: no event here.
    assert activation_subject(record.model_copy(update={"order_announces": True})) is None
    assert activation_subject(record.model_copy(update={"order_workflow_id": None})) is None


def test_each_activation_entry_keeps_its_own_flag() -> None:
    """A refusal and the acceptance after it, seen in one round: two events, each of its flag."""
    from contracts.activation import ActivationFlag, ActivationRecord
    from workflows.activation import record_on_order

    state, done = submitted(), Announced()
    announce(state, done)
    refused = ActivationRecord(
        issuer_id="ISS",
        card_id="card-1",
        activated_at="2026-12-07T10:00:00+00:00",
        flag=ActivationFlag.REFUSED_BEFORE_DELIVERY,
        order_stage="CARD_SHIPPED",
    )
    accepted = refused.model_copy(
        update={"flag": ActivationFlag.ACTIVATED, "activated_at": "2026-12-08T10:00:00+00:00", "order_stage": "x"}
    )
    with_attributes_off(lambda: record_on_order(state, refused))
    with_attributes_off(lambda: record_on_order(state, accepted))
    kinds = [(e.type, e.data["activation"], e.occurred_at) for e in catalogued(announce(state, done))]
    assert kinds == [
        ("order.card_activated_before_delivery", "REFUSED_BEFORE_DELIVERY", refused.activated_at),
        ("order.card_activated", "ACTIVATED", accepted.activated_at),
    ]


def with_attributes_off(call: object) -> None:
    """``record_on_order`` upserts search attributes: outside a workflow, that part is skipped."""
    from unittest import mock

    with mock.patch("temporalio.workflow.upsert_search_attributes"):
        call()  # type: ignore[operator]


def test_a_tracked_card_speaks_of_tracking() -> None:
    from events.catalogue import Subject

    subject = Subject(
        kind="tracking",
        workflow_id="card-tracking:ISS:c:SHIPMENT",
        issuer_id="ISS",
        card_id="c",
        tracking_type="SHIPMENT",
    )
    state, done, out = OrderState(submitted=True, operation_id="op-1"), Announced(), []
    for op in parsed(happy_sequence()):
        apply(state, op, source="notification")
        out += catalogued(new_events(subject, state, done, now=NOW))
    kinds = [e.type for e in out]
    assert kinds[0] == "tracking.started" and kinds[-1] == "tracking.delivered" and "tracking.shipped" in kinds
    assert all(e.data["tracking_type"] == "SHIPMENT" for e in out)


def test_the_asyncapi_document_is_current() -> None:
    assert DOCUMENT.read_text() == render(), "run: python -m events.asyncapi (make docs)"
