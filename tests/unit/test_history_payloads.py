"""What an order writes into its history stays small (issue 24): a notification signal carries
only what the workflows read, and an order's result says how it ended, not its whole view
(docs/benchmarks.md, "History per order")."""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import to_json
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from contracts.card_order import Notification, OrderState, OrderTiming
from d1.notifications import OperationNotification
from tests.histories import HISTORIES_DIR
from tests.support.notifications import happy_sequence, operation
from workflows import order_state


def _sent(op: dict[str, Any]) -> dict[str, Any]:
    """The operation as the signal's payload holds it (the data converter writes ``to_json``)."""
    sent: dict[str, Any] = json.loads(to_json(Notification(operation=OperationNotification.model_validate(op))))
    return sent["operation"]  # type: ignore[no-any-return]


def test_a_notification_leaves_out_absent_members_and_those_no_workflow_reads() -> None:
    op = operation("CARD_SHIPPED", shipment_status="InTransit", inputFileName="f.zip", consumerId="cust-1")
    op["inputFileName"] = "f.zip"
    sent = _sent(op)
    assert "issuerRequestId" not in sent and "inputFileName" not in sent
    assert set(sent["details"]) == {"status", "shipment"}  # no None, no consumerId, no inputFileName
    assert None not in sent.values() and None not in sent["details"]["shipment"].values()


def test_d1_unknown_members_still_reach_the_workflow() -> None:
    """An UPDATE_ORDER names its change in members D1's schema does not list (order_state reads them)."""
    op = operation("ACCEPTED", type="CANCEL", productionStatus="CARD_PROD_ONGOING")
    op.update(operation="UPDATE_ORDER", futureMember="kept")
    sent = _sent(op)
    assert sent["details"]["type"] == "CANCEL" and sent["details"]["productionStatus"] == "CARD_PROD_ONGOING"
    assert sent["futureMember"] == "kept"


def test_an_order_reads_the_compact_notifications_as_it_read_the_full_ones() -> None:
    full, compact = OrderState(), OrderState()
    delivered = frozenset(OrderTiming().delivered_shipment_statuses)
    for op in happy_sequence(card_id="card-1", request_id="req-1"):
        parsed = OperationNotification.model_validate(op)
        received = Notification.model_validate_json(to_json(Notification(operation=parsed))).operation
        assert received.dedup_key() == parsed.dedup_key()
        for state, update in ((full, parsed), (compact, received)):
            order_state.apply(
                state,
                update,
                source="notification",
                delivered_statuses=delivered,
                returned_statuses=frozenset(),
                produced_is_final=False,
            )
    assert compact == full and compact.outcome is not None


def test_a_recorded_order_ends_with_a_small_result() -> None:
    """The view with its timeline is read by query after the end, never repeated in the history."""
    doc = json.loads((HISTORIES_DIR / "happy.history.json").read_text())
    history = WorkflowHistory.from_json(doc["workflow_id"], doc["history"])
    (completed,) = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED]
    assert completed.ByteSize() < 600, completed.ByteSize()
