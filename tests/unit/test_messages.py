"""The message envelope (contracts/messages.py) and the rules a workflow opens it with
(workflows/messages.py): pure, no Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from contracts import messages
from contracts.card_order import CardOrderInput, ChangeRequest, Notification, ReconcileRequest
from contracts.d1_batch import SubmissionResult
from contracts.messages import Message
from tests.support.notifications import operation, parsed
from workflows.messages import (
    AHEAD,
    CHANGERS,
    NOTIFIERS,
    ORDER_STARTERS,
    REPLAYED,
    STALE,
    WRONG_KIND,
    WRONG_SENDER,
    Window,
    problem,
    remember,
    sender_allowed,
)

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
WINDOW = Window(max_age=timedelta(minutes=15), max_ahead=timedelta(minutes=5))


def check(
    msg: Message, sealer: str | None, *, kinds: tuple[str, ...], roles: tuple[str, ...], seen: tuple[str, ...] = ()
) -> str | None:
    return problem(msg, kinds=kinds, roles=roles, sealer=sealer, now=NOW, window=WINDOW, seen=seen)


def test_every_message_gets_an_id_and_an_issue_time_and_refuses_unknown_members() -> None:
    a, b = ReconcileRequest(), ReconcileRequest()
    assert a.kind == "reconcile_now" and a.message_id != b.message_id and a.issued_at.tzinfo is not None
    with pytest.raises(ValidationError):
        ReconcileRequest.model_validate({"kind": "reconcile_now", "newDeliveryAddress": {"city": "x"}})


def test_a_sealed_object_of_another_kind_does_not_read_as_a_change_request() -> None:
    """The attack of issue 19: a notification or reconcile argument passed as ``cancel``."""
    notification = Notification(operation=parsed([operation("CARD_PROD_DONE")])[0]).model_dump(mode="json")
    with pytest.raises(ValidationError):
        ChangeRequest.model_validate(notification)
    with pytest.raises(ValidationError):
        ChangeRequest.model_validate(ReconcileRequest().model_dump(mode="json"))
    with pytest.raises(ValidationError):
        ChangeRequest.model_validate({"note": "no kind"})
    # And a redirect's argument names its update: the cancel handler refuses it by kind.
    redirect = ChangeRequest(kind="redirect")
    assert check(redirect, "operator:alice", kinds=("cancel",), roles=CHANGERS) == WRONG_KIND


def test_the_sender_must_hold_a_role_allowed_for_the_handler() -> None:
    change = ChangeRequest(kind="cancel", issued_at=NOW)
    assert check(change, "operator:alice", kinds=("cancel",), roles=CHANGERS) is None
    assert check(change, "edge", kinds=("cancel",), roles=CHANGERS) is None
    assert check(change, "receiver", kinds=("cancel",), roles=CHANGERS) == WRONG_SENDER
    assert check(change, "worker", kinds=("cancel",), roles=CHANGERS) == WRONG_SENDER
    note = Notification(operation=parsed([operation("CARD_PROD_DONE")])[0], issued_at=NOW)
    assert check(note, "receiver", kinds=(messages.D1_NOTIFICATION,), roles=NOTIFIERS) is None
    assert check(note, "operator:alice", kinds=(messages.D1_NOTIFICATION,), roles=NOTIFIERS) == WRONG_SENDER
    assert not sender_allowed("operator:bad name", CHANGERS)  # a malformed operator is no operator
    assert not sender_allowed("receiver", ORDER_STARTERS) and sender_allowed("edge", ORDER_STARTERS)
    # No sealer: the codec is off (development); nothing to check.
    assert sender_allowed(None, ORDER_STARTERS)


def test_a_message_is_valid_within_its_window_only() -> None:
    kinds, roles = (messages.BATCH_RESULT,), ("worker",)
    fresh = SubmissionResult(batch_workflow_id="b", issued_at=NOW - timedelta(minutes=14))
    old = SubmissionResult(batch_workflow_id="b", issued_at=NOW - timedelta(minutes=16))
    ahead = SubmissionResult(batch_workflow_id="b", issued_at=NOW + timedelta(minutes=6))
    skewed = SubmissionResult(batch_workflow_id="b", issued_at=NOW + timedelta(minutes=4))
    assert check(fresh, "worker", kinds=kinds, roles=roles) is None
    assert check(skewed, "worker", kinds=kinds, roles=roles) is None
    assert check(old, "worker", kinds=kinds, roles=roles) == STALE
    assert check(ahead, "worker", kinds=kinds, roles=roles) == AHEAD


def test_a_message_is_accepted_once() -> None:
    msg = ReconcileRequest(issued_at=NOW)
    seen: list[str] = []
    assert check(msg, "operator:alice", kinds=(messages.RECONCILE,), roles=CHANGERS, seen=tuple(seen)) is None
    remember(seen, msg.message_id)
    assert check(msg, "operator:alice", kinds=(messages.RECONCILE,), roles=CHANGERS, seen=tuple(seen)) == REPLAYED


def test_the_memory_of_ids_is_bounded() -> None:
    seen: list[str] = []
    for n in range(10):
        remember(seen, f"id-{n:08d}", keep=4)
    assert seen == [f"id-{n:08d}" for n in range(6, 10)]


def test_the_order_input_is_a_message_of_its_own_kind() -> None:
    assert CardOrderInput.model_fields["kind"].default == messages.CARD_ORDER_START
    with pytest.raises(ValidationError):
        CardOrderInput.model_validate({"kind": messages.D1_NOTIFICATION, "ref": {}})
