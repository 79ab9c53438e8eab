"""Building D1 notification operations the way the emulator and D1 shape them."""

from __future__ import annotations

from typing import Any

from d1.notifications import OperationNotification

HAPPY_STEPS = ["CARD_PROD_REQUESTED", "DATA_PREPARED", "CARD_PROD_READY", "CARD_PROD_ONGOING", "CARD_PROD_DONE"]
SHIPMENT_STEPS = ["InfoReceived", "InTransit", "OutForDelivery", "Delivered"]


def operation(
    status: str,
    *,
    card_id: str = "card-1",
    request_id: str | None = "req-1",
    op_status: str | None = None,
    shipment_status: str | None = None,
    operation_id: str = "op-1",
    **details: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operationId": operation_id,
        "operation": "PRODUCE",
        "status": op_status or ("SUCCESSFUL" if status == "CARD_SHIPPED" else "PENDING"),
        "startTime": "2026-03-01T09:15:02.120Z",
        "cardId": card_id,
        "details": {"status": status, **details},
    }
    if request_id:
        body["issuerRequestId"] = request_id
    if shipment_status:
        body["details"]["shipment"] = {
            "carrier": "dhl",
            "trackingNumber": "TRACK123",
            "status": shipment_status,
            "message": f"carrier says {shipment_status}",
        }
    return body


def happy_sequence(**kw: Any) -> list[dict[str, Any]]:
    ops = [operation(s, **kw) for s in HAPPY_STEPS]
    ops[1]["details"]["dueDate"] = "2026-03-02"
    ops[1]["details"]["productionSite"] = "SITE-01"
    ops += [operation("CARD_SHIPPED", shipment_status=s, **kw) for s in SHIPMENT_STEPS]
    return ops


def parsed(ops: list[dict[str, Any]]) -> list[OperationNotification]:
    return [OperationNotification.model_validate(o) for o in ops]
