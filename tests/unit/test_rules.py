"""The pure rules around the state machine: pull & change eligibility, how a refusal ends
an order, what operators see, and the one table of terminal statuses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.exceptions import ActivityError, ApplicationError

from contracts.card_order import ChangeRecord, ChangeStatus, OrderRef, OrderState, Outcome
from d1.notifications import OperationNotification, ShipmentInfo
from d1.statuses import PRODUCTION_RANK, TERMINAL_STATUS_OUTCOMES, ProductionStatus
from tests.support.notifications import happy_sequence, parsed
from workflows.change_rules import change_problem
from workflows.details_line import attribute_values, details_line, due_date_value, in_words
from workflows.order_state import apply
from workflows.outcomes import (
    RESUBMIT_WITH_CURRENT_KEY,
    CallFailure,
    call_failure,
    gave_up,
    refused_by_d1,
    submission_ending,
)

REF = OrderRef(issuer_id="TESTISS001", card_id="card-1", issuer_request_id="req-1", shipment_type="INDIVIDUAL")


def state(status: str | None = "CARD_PROD_ONGOING", **fields: object) -> OrderState:
    st = OrderState(submitted=True, **fields)  # type: ignore[arg-type]
    if status is not None:
        st.production_status, st.production_rank = status, PRODUCTION_RANK[status]
    return st


# ---------------------------------------------------------------- pull & change eligibility


@pytest.mark.parametrize("kind", ["CANCEL", "ACCELERATE"])
def test_an_open_unshipped_order_takes_a_change(kind: str) -> None:
    assert change_problem(state(), REF, kind, has_address=False) is None


@pytest.mark.parametrize("kind", ["REDIRECT", "ACCELERATE_AND_REDIRECT"])
def test_a_redirect_needs_an_address(kind: str) -> None:
    assert change_problem(state(), REF, kind, has_address=True) is None
    assert "needs new_delivery_address" in (change_problem(state(), REF, kind, has_address=False) or "")


@pytest.mark.parametrize(
    ("st", "ref", "kind", "has_address", "reason"),
    [
        (state(outcome=Outcome.DELIVERED), REF, "CANCEL", False, "already finished (DELIVERED)"),
        (state("CARD_SHIPPED"), REF, "CANCEL", False, "already shipped"),
        (OrderState(), REF, "CANCEL", False, "has not accepted the order yet"),
        (
            state(
                changes=[
                    ChangeRecord(change_id="cancel-1", type="CANCEL", status=ChangeStatus.ACCEPTED, requested_at="t")
                ]
            ),
            REF,
            "ACCELERATE",
            False,
            "being canceled",
        ),
        (
            state(
                changes=[
                    ChangeRecord(
                        change_id="accelerate-1", type="ACCELERATE", status=ChangeStatus.SENT, requested_at="t"
                    )
                ]
            ),
            REF,
            "CANCEL",
            False,
            "still waiting for D1's answer",
        ),
        (state(), REF, "CANCEL", True, "takes no new_delivery_address"),
        (state(), REF.model_copy(update={"shipment_type": None}), "ACCELERATE", False, "only applies to shipped"),
        (state(), REF.model_copy(update={"shipment_type": "BULK"}), "REDIRECT", True, "BULK shipment"),
        (state(), REF, "DESTROY", False, "not a pull & change type"),
    ],
)
def test_impossible_changes_are_refused_with_the_reason(
    st: OrderState, ref: OrderRef, kind: str, has_address: bool, reason: str
) -> None:
    assert reason in (change_problem(st, ref, kind, has_address=has_address) or "")


def test_cancel_applies_to_an_unshipped_instant_card() -> None:
    instant = REF.model_copy(update={"shipment_type": None})
    assert change_problem(state(), instant, "CANCEL", has_address=False) is None


# ---------------------------------------------------------------- refusals


def test_a_crypto_error_asks_for_a_resubmission_with_the_current_key() -> None:
    ending = refused_by_d1({"httpStatus": 400, "errorCode": "CRYPTO_ERROR", "error": "$.encryptedData"})
    assert ending.outcome is Outcome.CRYPTO_REJECTED and ending.reason == RESUBMIT_WITH_CURRENT_KEY
    assert ending.error.error_code == "CRYPTO_ERROR" and ending.error.error == "$.encryptedData"


def test_other_refusals_are_rejections_with_d1s_code_or_field() -> None:
    assert (
        refused_by_d1({"httpStatus": 400, "errorCode": "FIELD_INVALID_FORMAT", "error": "$.x"}).reason
        == "FIELD_INVALID_FORMAT"
    )
    assert refused_by_d1({"httpStatus": 409, "error": "$.cardId"}).outcome is Outcome.REJECTED
    assert refused_by_d1({"httpStatus": 409, "error": "$.cardId"}).reason == "$.cardId"


def test_refusals_before_sending_and_giving_up() -> None:
    card = submission_ending(CallFailure("card data outside encryptedData: $.cvv2", card_data_in_clear=True))
    assert card.outcome is Outcome.REJECTED and card.error.error_code == "CardDataInClear"
    assert card.error.error == "card data outside encryptedData: $.cvv2"
    refused = submission_ending(CallFailure("x", refusal={"httpStatus": 400, "errorCode": "FIELD_INVALID_FORMAT"}))
    assert refused.outcome is Outcome.REJECTED and refused.reason == "FIELD_INVALID_FORMAT"
    assert submission_ending(CallFailure("timeout")).outcome is Outcome.SUBMIT_FAILED
    assert gave_up("timeout").outcome is Outcome.SUBMIT_FAILED


def _activity_error(cause: BaseException) -> ActivityError:
    err = ActivityError(
        "activity failed",
        scheduled_event_id=1,
        started_event_id=2,
        identity="worker",
        activity_type="submit_order",
        activity_id="1",
        retry_state=None,
    )
    err.__cause__ = cause
    return err


def test_an_activity_failure_is_decoded_in_one_place() -> None:
    info = {"httpStatus": 400, "errorCode": "CRYPTO_ERROR", "error": "$.encryptedData"}
    refused = call_failure(_activity_error(ApplicationError("D1 rejected", info, type="D1Rejected")))
    assert refused.refusal == info and not refused.card_data_in_clear
    bare = call_failure(_activity_error(ApplicationError("D1 rejected", type="D1Rejected")))
    assert bare.refusal == {}
    clear = call_failure(
        _activity_error(ApplicationError("card data outside encryptedData: $.cvv2", type="CardDataInClear"))
    )
    assert (
        clear.card_data_in_clear and clear.refusal is None and clear.text == "card data outside encryptedData: $.cvv2"
    )
    unreachable = call_failure(_activity_error(ApplicationError("D1 unavailable (HTTP 503)", type="D1Unavailable")))
    assert unreachable == CallFailure("D1Unavailable: D1 unavailable (HTTP 503)")
    timed_out = call_failure(_activity_error(TimeoutError("activity timeout")))
    assert timed_out == CallFailure("activity timeout")


# ---------------------------------------------------------------- what operators see


def test_the_details_line_reads_like_a_status_report() -> None:
    st = OrderState(submitted=True)
    for op in parsed(happy_sequence())[:6]:
        apply(st, op, source="notification")
    line = details_line(st)
    assert "**Production:** shipped (CARD_SHIPPED)" in line
    assert "**Due:** 2026-03-02" in line and "**Shipment:** InfoReceived" in line
    assert "from a D1 notification" in line and "(6 updates so far)" in line
    assert details_line(OrderState()) == "**Production:** not yet acknowledged by D1"


def test_search_attributes_follow_the_state_and_hold_identifiers_only() -> None:
    st = OrderState(
        production_status="CARD_SHIPPED",
        due_date="2026-03-02",
        outcome=Outcome.DELIVERED,
        shipment=ShipmentInfo(status="Delivered", trackingNumber="1Z999", carrier="dhl", message="left at door"),
    )
    values = attribute_values(st)
    assert values == {
        "ProductionStatus": "CARD_SHIPPED",
        "ShipmentStatus": "Delivered",
        "TrackingNumber": "1Z999",
        "OrderOutcome": "DELIVERED",
        "DueDate": datetime(2026, 3, 2, tzinfo=UTC),
    }
    assert due_date_value("not a date") is None and in_words("NEW_STATUS") == "NEW_STATUS"


# ---------------------------------------------------------------- the one table


def test_every_terminal_status_has_an_outcome_and_outranks_progress() -> None:
    assert set(TERMINAL_STATUS_OUTCOMES) == {
        "DATA_EXCEPTION",
        "CARD_PROD_EXCEPTION",
        "CARD_PROD_CANCELED",
        "CARD_RETURNED",
    }
    for status, outcome in TERMINAL_STATUS_OUTCOMES.items():
        assert Outcome(outcome)  # a name of the contract's outcomes
        assert PRODUCTION_RANK[status] > PRODUCTION_RANK[ProductionStatus.CARD_SHIPPED]


# Written out here, not read from d1/statuses.py: a wrong entry in that table must fail this test.
@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("CARD_PROD_CANCELED", "CANCELED"),
        ("CARD_PROD_EXCEPTION", "PRODUCTION_EXCEPTION"),
        ("CARD_RETURNED", "RETURNED"),
        ("DATA_EXCEPTION", "DATA_EXCEPTION"),
    ],
)
def test_the_state_machine_ends_orders_from_the_table(status: str, outcome: str) -> None:
    st = OrderState(submitted=True)
    apply(
        st,
        OperationNotification.model_validate(
            {
                "operationId": "op-1",
                "operation": "PRODUCE",
                "status": "SUCCESSFUL",
                "startTime": "2026-03-01T10:00:00Z",
                "cardId": "card-1",
                "details": {"status": status, "reason": "because"},
            }
        ),
        source="notification",
    )
    assert st.outcome == Outcome(outcome) and st.outcome_reason == "because"
