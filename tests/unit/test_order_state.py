"""The pure state machine: idempotent, monotonic, order-independent."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.card_order import OrderState, Outcome
from d1.notifications import OperationNotification
from tests.support.notifications import happy_sequence, operation, parsed
from workflows.order_state import Applied, apply


def run(ops: list[OperationNotification]) -> OrderState:
    state = OrderState()
    for op in ops:
        apply(state, op, source="notification")
    return state


def comparable(state: OrderState) -> dict:
    data = state.model_dump(exclude={"seen_keys", "updates_applied", "duplicates_ignored"})
    return data


def test_happy_path_reaches_delivered_with_full_timeline() -> None:
    state = run(parsed(happy_sequence()))
    assert state.outcome == Outcome.DELIVERED
    assert state.production_status == "CARD_SHIPPED"
    assert state.shipment is not None and state.shipment.status == "Delivered"
    assert state.due_date == "2026-03-02"
    assert state.production_site == "SITE-01"
    assert [e.production_status for e in state.timeline][:5] == [
        "CARD_PROD_REQUESTED",
        "DATA_PREPARED",
        "CARD_PROD_READY",
        "CARD_PROD_ONGOING",
        "CARD_PROD_DONE",
    ]
    assert [e.shipment_status for e in state.timeline[5:]] == [
        "InfoReceived",
        "InTransit",
        "OutForDelivery",
        "Delivered",
    ]


def test_duplicate_changes_nothing() -> None:
    ops = parsed(happy_sequence())
    state = run(ops[:3])
    before = state.model_dump(exclude={"duplicates_ignored"})
    assert apply(state, ops[1], source="notification") == Applied.DUPLICATE
    assert state.model_dump(exclude={"duplicates_ignored"}) == before
    assert state.duplicates_ignored == 1


def test_never_moves_backwards() -> None:
    ops = parsed(happy_sequence())
    state = run([ops[3]])  # ONGOING first
    assert apply(state, ops[0], source="notification") == Applied.RECORDED  # REQUESTED arrives late
    assert state.production_status == "CARD_PROD_ONGOING"
    assert len(state.timeline) == 2
    assert state.timeline[0].production_status == "CARD_PROD_REQUESTED"  # canonical order


def test_unknown_status_is_kept_and_does_not_move_the_order() -> None:
    state = run(parsed([operation("CARD_PROD_READY"), operation("CARD_PROD_QUALITY_CHECK")]))
    assert state.production_status == "CARD_PROD_READY"
    assert state.unknown_statuses == ["CARD_PROD_QUALITY_CHECK"]
    assert state.timeline[-1].production_status == "CARD_PROD_QUALITY_CHECK"
    assert state.outcome is None


def test_unknown_fields_are_tolerated() -> None:
    raw = operation("DATA_PREPARED")
    raw["brandNewField"] = {"x": 1}
    raw["details"]["anotherNewField"] = "y"
    op = OperationNotification.model_validate(raw)
    assert op.model_extra == {"brandNewField": {"x": 1}}
    assert run([op]).production_status == "DATA_PREPARED"


def test_data_exception_is_terminal_with_reason() -> None:
    ops = parsed(
        [
            operation("CARD_PROD_REQUESTED"),
            operation("DATA_EXCEPTION", op_status="FAILED", reason="name exceeds printable length"),
        ]
    )
    state = run(ops)
    assert state.outcome == Outcome.DATA_EXCEPTION
    assert state.outcome_reason == "name exceeds printable length"
    # A stale progress update after the end does not reopen the order.
    apply(state, OperationNotification.model_validate(operation("CARD_PROD_READY")), source="notification")
    assert state.production_status == "DATA_EXCEPTION"


def test_canceled_and_returned_are_terminal() -> None:
    assert run(parsed([operation("CARD_PROD_CANCELED", op_status="FAILED")])).outcome == Outcome.CANCELED
    assert run(parsed([operation("CARD_RETURNED")])).outcome == Outcome.RETURNED


def test_other_operations_are_ignored_by_the_produce_state_machine() -> None:
    raw = operation("CARD_PROD_READY")
    raw["operation"] = "SUSPEND"
    state = OrderState()
    assert apply(state, OperationNotification.model_validate(raw), source="notification") == Applied.IGNORED
    assert state.timeline == []


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_arrival_order_and_duplication_gives_the_same_final_state(data: st.DataObject) -> None:
    ops = happy_sequence()
    reference = comparable(run(parsed(ops)))
    dupes = data.draw(st.lists(st.sampled_from(range(len(ops))), max_size=20))
    delivered = [ops[i] for i in range(len(ops))] + [ops[i] for i in dupes]
    shuffled = data.draw(st.permutations(delivered))
    state = OrderState()
    ranks_seen: list[int] = []
    for op in parsed(list(shuffled)):
        apply(state, op, source="notification")
        ranks_seen.append(state.production_rank)
    assert ranks_seen == sorted(ranks_seen), "production status moved backwards"
    final = comparable(state)
    # The outcome is decided when Delivered arrives; everything else must match exactly.
    assert final == reference
