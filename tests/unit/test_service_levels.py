"""Service levels (workflows/service_levels.py): D1's due date as a deadline, late
shipments, durations and counters, each measured once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from contracts import search_attributes as sa
from contracts.card_order import OrderRef, OrderState, Outcome
from observability import names
from tests.support.notifications import operation, parsed
from workflows import order_state
from workflows.service_levels import attribute_values, due_deadline, hours_late, labels, observe

REF = OrderRef(
    issuer_id="TESTISS001",
    card_id="card-1",
    issuer_request_id="req-1",
    card_product_id="DEMO_VISA_DEBIT_01",
    shipment_type="INDIVIDUAL",
    issuance="RENEWAL",
    priority="STANDARD",
)
REQUESTED = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def at(op: dict[str, Any], moment: str) -> dict[str, Any]:
    op["startTime"] = moment
    return op


def feed(st: OrderState, *ops: dict[str, Any]) -> None:
    for op in parsed(list(ops)):
        order_state.apply(st, op, source="notification")


def started() -> OrderState:
    st = OrderState()
    assert observe(st, REF, REQUESTED, issuer_id="TESTISS001") == []
    st.submitted = True
    return st


def prepared(due: str = "2026-03-02") -> dict[str, Any]:
    return at(operation("DATA_PREPARED", dueDate=due, productionSite="SITE-01"), "2026-03-01T08:05:00Z")


def test_a_due_date_lasts_until_the_end_of_its_day_and_a_due_time_is_exact() -> None:
    assert due_deadline("2026-03-02") == datetime(2026, 3, 3, tzinfo=UTC)
    assert due_deadline("2026-03-02T12:00:00Z") == datetime(2026, 3, 2, 12, tzinfo=UTC)
    assert due_deadline(None) is None and due_deadline("soon") is None
    assert hours_late("2026-03-02", datetime(2026, 3, 2, 23, 59, tzinfo=UTC)) == 0
    assert hours_late("2026-03-02", datetime(2026, 3, 3, 6, 30, tzinfo=UTC)) == 6.5
    assert hours_late(None, REQUESTED) is None


def test_an_order_shipped_on_its_due_date_is_on_time_and_measured_once() -> None:
    st = started()
    assert st.requested_at == REQUESTED.isoformat()
    feed(st, prepared(), at(operation("CARD_SHIPPED", shipment_status="InfoReceived"), "2026-03-02T16:00:00Z"))
    measures = observe(st, REF, REQUESTED + timedelta(days=5), issuer_id="TESTISS001")
    assert [(m.metric, m.seconds) for m in measures] == [(names.REQUEST_TO_SHIPPED, 32 * 3600.0)]
    assert measures[0].labels == {
        "issuer_id": "TESTISS001",
        "program": "DEMO_VISA_DEBIT_01",
        "issuance": "RENEWAL",
        "priority": "STANDARD",
    }
    assert (st.shipped_late, st.late_hours, st.shipped_at) == (False, 0, "2026-03-02T16:00:00+00:00")
    assert observe(st, REF, REQUESTED + timedelta(days=6), issuer_id="TESTISS001") == []


def test_a_late_shipment_is_recorded_counted_and_published() -> None:
    st = started()
    feed(st, prepared(), at(operation("CARD_SHIPPED", shipment_status="InfoReceived"), "2026-03-03T10:00:00Z"))
    metrics = [m.metric for m in observe(st, REF, REQUESTED + timedelta(days=3), issuer_id="TESTISS001")]
    assert metrics == [names.REQUEST_TO_SHIPPED, names.SHIPPED_LATE]
    assert (st.shipped_late, st.late_hours) == (True, 10.0)
    values = attribute_values(st, REF)
    assert values[sa.SHIPPED_LATE.name] is True and values[sa.LATE_HOURS.name] == 10.0
    assert values[sa.SHIPPED_AT.name] == datetime(2026, 3, 3, 10, tzinfo=UTC)
    assert values[sa.SERVICE_LABELS.name] == [
        "program=DEMO_VISA_DEBIT_01",
        "issuance=RENEWAL",
        "priority=STANDARD",
        "site=SITE-01",
    ]


def test_delivery_measures_both_durations_from_d1s_times() -> None:
    st = started()
    feed(
        st,
        prepared(),
        at(operation("CARD_SHIPPED", shipment_status="InfoReceived"), "2026-03-02T08:00:00Z"),
        at(operation("CARD_SHIPPED", shipment_status="Delivered"), "2026-03-04T08:00:00Z"),
    )
    assert st.outcome == Outcome.DELIVERED
    measures = {m.metric: m.seconds for m in observe(st, REF, REQUESTED + timedelta(days=9), issuer_id="x")}
    assert measures == {
        names.REQUEST_TO_SHIPPED: 24 * 3600.0,
        names.SHIPPED_TO_DELIVERED: 48 * 3600.0,
        names.REQUEST_TO_DELIVERED: 72 * 3600.0,
    }
    assert st.ended_at == "2026-03-04T08:00:00+00:00"


def test_returns_and_exceptions_are_counted_with_their_kind() -> None:
    st = started()
    feed(
        st,
        prepared(),
        at(operation("CARD_SHIPPED", shipment_status="Exception"), "2026-03-02T08:00:00Z"),
        at(operation("CARD_SHIPPED", shipment_status="Returned"), "2026-03-05T08:00:00Z"),
    )
    measures = observe(st, REF, REQUESTED + timedelta(days=5), issuer_id="x")
    assert [m.metric for m in measures] == [names.REQUEST_TO_SHIPPED, names.RETURNED, names.EXCEPTIONS]
    assert measures[-1].labels["kind"] == "CARRIER_EXCEPTION"
    assert observe(st, REF, REQUESTED + timedelta(days=6), issuer_id="x") == []

    failed = started()
    feed(failed, at(operation("DATA_EXCEPTION", op_status="FAILED", errorCode="E1"), "2026-03-01T09:00:00Z"))
    assert failed.outcome == Outcome.DATA_EXCEPTION
    (exception,) = observe(failed, REF, REQUESTED, issuer_id="x")
    assert (exception.metric, exception.labels["kind"]) == (names.EXCEPTIONS, "DATA_EXCEPTION")


def test_an_order_that_started_before_measuring_has_no_request_time_and_no_durations_from_it() -> None:
    st = OrderState(submitted=True)
    feed(st, prepared(), at(operation("CARD_SHIPPED", shipment_status="InfoReceived"), "2026-03-02T08:00:00Z"))
    assert observe(st, REF, REQUESTED + timedelta(days=2), issuer_id="x") == []
    assert st.requested_at is None and st.shipped_late is False


def test_labels_without_issuance_or_priority_say_unknown() -> None:
    bare = OrderRef(issuer_id="I", card_id="c", issuer_request_id="r")
    assert labels(bare) == {"program": "unknown", "issuance": "unknown", "priority": "unknown"}
    assert sa.label_values(["program=P", "site=S-1", "junk"]) == {"program": "P", "site": "S-1"}
