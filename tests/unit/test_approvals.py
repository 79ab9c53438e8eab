"""Four eyes on a new delivery address: the pure rules (workflows/approvals.py), the program's
setting (d1/program.py) and how it reaches an order's input (starter/edge.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts.card_order import (
    ApprovalPolicy,
    CardOrderInput,
    ChangeRecord,
    ChangeStatus,
    OrderRef,
    OrderState,
    OrderView,
)
from d1.program import DEFAULT_PROGRAM_FILE, Program, ProgramConfigError, load_program
from starter.edge import approval_policy
from starter.operations import change_steps
from workflows import approvals
from workflows.details_line import details_line

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
ALICE, BOB = "operator:alice", "operator:bob"


def waiting(requested_by: str | None = ALICE, *, policy: ApprovalPolicy | None = None) -> OrderState:
    st = OrderState(submitted=True)
    record = ChangeRecord(
        change_id="redirect-1", type="REDIRECT", requested_at=NOW.isoformat(), requested_by=requested_by
    )
    approvals.hold(record, now=NOW, policy=policy or ApprovalPolicy())
    st.changes.append(record)
    return st


def test_address_changes_need_approval_unless_the_program_turns_four_eyes_off() -> None:
    on, off = ApprovalPolicy(), ApprovalPolicy(four_eyes=False)
    assert approvals.needs_approval("REDIRECT", on)
    assert approvals.needs_approval("ACCELERATE_AND_REDIRECT", on)
    assert not approvals.needs_approval("CANCEL", on)
    assert not approvals.needs_approval("ACCELERATE", on)
    assert not approvals.needs_approval("REDIRECT", off)
    assert not approvals.needs_approval("ACCELERATE_AND_REDIRECT", off)


def test_a_held_change_waits_24_hours_by_default() -> None:
    record = waiting().changes[0]
    assert record.status == ChangeStatus.AWAITING_APPROVAL
    assert approvals.expires_at(record) == NOW + timedelta(hours=24)
    short = waiting(policy=ApprovalPolicy(expires_after=timedelta(hours=2))).changes[0]
    assert approvals.expires_at(short) == NOW + timedelta(hours=2)


def test_a_second_operator_approves() -> None:
    st = waiting()
    assert approvals.approval_problem(st, "redirect-1", BOB, NOW + timedelta(hours=1)) is None
    record = st.changes[0]
    approvals.approve(record, BOB, NOW + timedelta(hours=1))
    assert record.status == ChangeStatus.REQUESTED
    assert (record.requested_by, record.approved_by) == (ALICE, BOB)
    assert record.approved_at == (NOW + timedelta(hours=1)).isoformat()
    assert st.pending_change is record  # now it goes to D1 like any other change


@pytest.mark.parametrize("approver", [ALICE, "operator:ALICE"])
def test_the_requester_cannot_approve_their_own_change(approver: str) -> None:
    problem = approvals.approval_problem(waiting(), "redirect-1", approver, NOW)
    assert problem is not None and "second, different operator" in problem


@pytest.mark.parametrize("approver", ["edge", "receiver", "worker", None, "operator:"])
def test_only_a_named_operator_approves(approver: str | None) -> None:
    problem = approvals.approval_problem(waiting(requested_by="edge"), "redirect-1", approver, NOW)
    assert problem is not None and "only a named operator" in problem


def test_an_issuer_systems_request_is_approved_by_any_operator() -> None:
    assert approvals.approval_problem(waiting(requested_by="edge"), "redirect-1", ALICE, NOW) is None


def test_approval_needs_a_waiting_unexpired_change() -> None:
    st = waiting()
    assert "no change redirect-9" in (approvals.approval_problem(st, "redirect-9", BOB, NOW) or "")
    late = NOW + timedelta(hours=24)
    assert "expired unapproved" in (approvals.approval_problem(st, "redirect-1", BOB, late) or "")
    approvals.approve(st.changes[0], BOB, NOW)
    assert "not waiting for approval (it is REQUESTED)" in (
        approvals.approval_problem(st, "redirect-1", BOB, NOW) or ""
    )


def test_expiry_leaves_nothing_pending() -> None:
    st = waiting()
    assert approvals.next_expiry(st) == NOW + timedelta(hours=24)
    assert approvals.expire_due(st, NOW + timedelta(hours=23, minutes=59)) == []
    expired = approvals.expire_due(st, NOW + timedelta(hours=24))
    assert [r.change_id for r in expired] == ["redirect-1"]
    record = st.changes[0]
    assert record.status == ChangeStatus.EXPIRED
    assert record.approved_by is None and record.d1_operation_id is None
    assert "D1 was not asked" in (record.reason or "")
    assert approvals.next_expiry(st) is None
    assert st.pending_change is None


def test_a_finished_order_closes_what_waits() -> None:
    st = waiting()
    closed = approvals.close_awaiting(st, NOW)
    assert [r.status for r in closed] == [ChangeStatus.EXPIRED]
    assert "order finished" in (closed[0].reason or "")


def test_a_waiting_change_blocks_other_changes_but_not_a_cancel() -> None:
    st = waiting()
    assert approvals.blocking(st, "CANCEL") is None
    for kind in ("REDIRECT", "ACCELERATE", "ACCELERATE_AND_REDIRECT"):
        assert "waiting for a second operator's approval" in (approvals.blocking(st, kind) or "")
    assert approvals.blocking(OrderState(), "REDIRECT") is None


def test_the_requester_withdraws_and_another_operator_rejects() -> None:
    st = waiting()
    assert approvals.rejection_problem(st, "redirect-1", ALICE, NOW) is None
    approvals.reject(st.changes[0], ALICE, NOW)
    assert st.changes[0].status == ChangeStatus.REJECTED
    assert (st.changes[0].rejected_by, st.changes[0].reason) == (ALICE, "withdrawn by the requester")

    st = waiting()
    approvals.reject(st.changes[0], BOB, NOW)
    assert st.changes[0].reason == f"rejected by {BOB}"

    by_edge = waiting(requested_by="edge")
    assert approvals.rejection_problem(by_edge, "redirect-1", "edge", NOW) is None  # withdrawn by its system
    assert "only a named operator" in (approvals.rejection_problem(by_edge, "redirect-1", "receiver", NOW) or "")


def test_the_program_turns_four_eyes_on_by_default() -> None:
    program = load_program(DEFAULT_PROGRAM_FILE)
    assert program.pullAndChange.fourEyesAddressChange is True
    assert program.pullAndChange.addressChangeApprovalExpiry == timedelta(hours=24)
    assert "four eyes on address changes ON" in program.four_eyes_summary()
    assert "24h" in program.four_eyes_summary()
    assert approval_policy(program) == ApprovalPolicy()


def _program(tmp_path: Path, rules: object) -> Path:
    raw = json.loads(DEFAULT_PROGRAM_FILE.read_text())
    raw["pullAndChange"] = rules
    path = tmp_path / "program.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw))
    return path


def test_a_program_may_turn_four_eyes_off_or_shorten_the_expiry(tmp_path: Path) -> None:
    off = load_program(_program(tmp_path / "off", {"fourEyesAddressChange": False}))
    assert approval_policy(off).four_eyes is False
    assert "four eyes on address changes OFF" in off.four_eyes_summary()
    short = load_program(_program(tmp_path / "short", {"addressChangeApprovalExpiry": "PT2H"}))
    assert approval_policy(short) == ApprovalPolicy(expires_after=timedelta(hours=2))


@pytest.mark.parametrize("rules", [{"fourEyes": False}, {"addressChangeApprovalExpiry": "PT0S"}])
def test_a_mistyped_or_empty_setting_is_refused_at_start_up(tmp_path: Path, rules: object) -> None:
    with pytest.raises(ProgramConfigError, match="pullAndChange"):
        load_program(_program(tmp_path, rules))


def test_an_order_started_before_the_setting_existed_gets_four_eyes() -> None:
    old = CardOrderInput.model_validate(
        {"ref": OrderRef(issuer_id="I", card_id="c", issuer_request_id="r").model_dump(), "state": {}}
    )
    assert old.approvals == ApprovalPolicy(four_eyes=True, expires_after=timedelta(hours=24))
    assert Program.model_fields["pullAndChange"].default_factory is not None


def test_the_view_names_who_asked_who_approved_and_until_when_it_waits() -> None:
    st = waiting()
    record = st.changes[0]
    record.redirected_to = "Lyon, FR"
    words = record.in_words()
    assert words.startswith("REDIRECT AWAITING_APPROVAL to Lyon, FR, asked by operator:alice")
    assert f"second operator's approval before {record.approval_expires_at}" in words
    assert "**Pull & change:** REDIRECT AWAITING_APPROVAL" in details_line(st)

    approvals.approve(record, BOB, NOW + timedelta(hours=1))
    assert "asked by operator:alice, approved by operator:bob" in record.in_words()
    view = OrderView(
        workflow_id="card-order:I:r", ref=OrderRef(issuer_id="I", card_id="c", issuer_request_id="r"), state=st
    )
    lines = [(line.at, line.text) for line in change_steps(view)]
    assert lines[0][0] == NOW and "REDIRECT redirect-1 asked by operator:alice (to Lyon, FR)" in lines[0][1]
    assert lines[1] == (NOW + timedelta(hours=1), "redirect-1 approved by operator:bob")

    expired = waiting()
    approvals.expire_due(expired, NOW + timedelta(days=1))
    view = view.model_copy(update={"state": expired})
    assert change_steps(view)[-1].text.startswith("redirect-1 EXPIRED, D1 not asked")
