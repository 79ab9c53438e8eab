"""The tracking hub's Track Card: the three tracking types as STANDALONE_TRACKING notifications,
validation with D1's codes, idempotent repeats, faults, and what productionStatus answers."""

from __future__ import annotations

from typing import Any

import pytest
from emulator_support import Emulator, shipment_status, write_program

SHIPMENT = {"carrier": "ups", "trackingNumber": "1Z999AA10123456784"}


def _tracking(ops: list[dict[str, Any]], card_id: str) -> list[dict[str, Any]]:
    return [op for op in ops if op["cardId"] == card_id and op["operation"] == "STANDALONE_TRACKING"]


@pytest.mark.parametrize(
    ("body", "status", "shipment"),
    [
        ({"trackingType": "PRODUCTION", "productionSite": "PARTNER-SITE-7"}, "CARD_SHIPPED", None),
        ({"trackingType": "RETURN", "shipment": SHIPMENT, "reason": "addressee unknown"}, "CARD_RETURNED", "Returned"),
    ],
    ids=["production", "return"],
)
async def test_production_and_return_send_one_successful_notification(
    emu: Emulator, body: dict[str, Any], status: str, shipment: str | None
) -> None:
    token = await emu.token()
    response = await emu.track(token, body, card_id="card-tr1")
    assert response.status_code == 202, response.text
    operation_id = response.json()["operationId"]
    await emu.receiver.wait_for(lambda ops: bool(_tracking(ops, "card-tr1")))
    await emu.wait_status(token, lambda op: op["status"] == "SUCCESSFUL", card_id="card-tr1")
    ops = _tracking(emu.receiver.operations(), "card-tr1")
    assert len(ops) == 1
    op = ops[0]
    assert op["operationId"] == operation_id and op["status"] == "SUCCESSFUL" and op["endTime"]
    assert op["details"]["trackingType"] == body["trackingType"]
    assert op["details"]["status"] == status
    assert op["details"]["productionSite"] == body.get("productionSite", "EMU-SITE-01")
    assert shipment_status(op) == shipment
    if "reason" in body:
        assert op["details"]["reason"] == body["reason"]
    assert "issuerRequestId" not in op
    stats = await emu.stats()
    assert stats["trackRequests"] == 1 and stats["cards"] == {}  # no card order


async def test_shipment_tracking_goes_pending_then_successful_until_delivered(emu: Emulator) -> None:
    token = await emu.token()
    response = await emu.track(token, {"trackingType": "SHIPMENT", "shipment": SHIPMENT}, card_id="card-tr2")
    assert response.status_code == 202
    await emu.receiver.wait_for(
        lambda ops: any(shipment_status(op) == "Delivered" for op in _tracking(ops, "card-tr2"))
    )
    ops = _tracking(emu.receiver.operations(), "card-tr2")
    assert [(op["status"], shipment_status(op)) for op in ops] == [
        ("PENDING", None),
        ("SUCCESSFUL", "InfoReceived"),
        ("SUCCESSFUL", "InTransit"),
        ("SUCCESSFUL", "OutForDelivery"),
        ("SUCCESSFUL", "Delivered"),
    ]
    assert {op["operationId"] for op in ops} == {response.json()["operationId"]}
    assert {op["details"]["status"] for op in ops} == {"CARD_SHIPPED"}
    assert {op["details"]["trackingType"] for op in ops} == {"SHIPMENT"}
    for op in ops:
        assert op["details"]["shipment"]["carrier"] == "ups"
        assert op["details"]["shipment"]["trackingNumber"] == SHIPMENT["trackingNumber"]
    # productionStatus answers with the latest STANDALONE_TRACKING operation (our reading).
    status = (await emu.status(token, card_id="card-tr2")).json()["operations"][0]
    assert status == ops[-1]


@pytest.mark.parametrize(
    ("body", "code", "error"),
    [
        ({}, "FIELD_INVALID_FORMAT", "$.trackingType"),
        ({"trackingType": "DELIVERY"}, "FIELD_INVALID_VALUE", "$.trackingType"),
        ({"trackingType": "SHIPMENT"}, "FIELD_INVALID_FORMAT", "$.shipment"),
        (
            {"trackingType": "SHIPMENT", "shipment": {**SHIPMENT, "carrier": "pigeon-post"}},
            "FIELD_INVALID_VALUE",
            "$.shipment.carrier",
        ),
        (
            {"trackingType": "SHIPMENT", "shipment": {**SHIPMENT, "trackingNumber": "no spaces"}},
            "FIELD_INVALID_FORMAT",
            "$.shipment.trackingNumber",
        ),
        ({"trackingType": "PRODUCTION", "productionSite": ""}, "FIELD_INVALID_FORMAT", "$.productionSite"),
        ({"trackingType": "RETURN", "reason": "x" * 201}, "FIELD_INVALID_FORMAT", "$.reason"),
        ([], "FIELD_INVALID_FORMAT", "$"),
    ],
    ids=["type-missing", "type-value", "shipment-missing", "carrier", "tracking-number", "site", "reason", "list"],
)
async def test_track_card_bodies_are_validated(emu: Emulator, body: Any, code: str, error: str) -> None:
    token = await emu.token()
    response = await emu.track(token, body, card_id="card-tr3")
    assert response.status_code == 400, response.text
    assert (response.json()["errorCode"], response.json()["error"]) == (code, error)
    assert (await emu.stats())["trackRequests"] == 0


async def test_track_card_repeats_and_faults(emu: Emulator) -> None:
    token = await emu.token()
    body = {"trackingType": "PRODUCTION"}
    first = await emu.track(token, body, card_id="card-tr4", correlation_id="track-1")
    again = await emu.track(token, body, card_id="card-tr4", correlation_id="track-1")
    assert first.json()["operationId"] == again.json()["operationId"]
    other = await emu.track(token, body, card_id="card-tr4", correlation_id="track-2")
    assert other.json()["operationId"] != first.json()["operationId"]
    await emu.faults(trackFailures=[{"status": 503}])
    assert (await emu.track(token, body, card_id="card-tr4")).status_code == 503
    stats = await emu.stats()
    assert stats["trackRequests"] == 2 and stats["trackRepeats"] == 1
    listed = (await emu.client.get("/_emulator/tracking", params={"cardId": "card-tr4"})).json()["tracking"]
    assert [t["operationId"] for t in listed] == [first.json()["operationId"], other.json()["operationId"]]


async def test_a_produce_order_wins_in_production_status(emu: Emulator) -> None:
    await emu.faults(stepDelayMs=60_000)
    token = await emu.token()
    order = await emu.order(token, card_id="card-tr5")
    await emu.track(token, {"trackingType": "PRODUCTION"}, card_id="card-tr5")
    status = (await emu.status(token, card_id="card-tr5")).json()["operations"][0]
    assert status["operation"] == "PRODUCE" and status["operationId"] == order.json()["operationId"]


async def test_production_status_can_ignore_tracked_cards(emulator_factory: Any, tmp_path: Any) -> None:
    program = write_program(
        tmp_path / "program.json",
        productionStatusAnswersTracking=False,
        trackCardPath="/issuers/{issuerId}/trackedCards/{cardId}",
    )
    emu: Emulator = await emulator_factory(program_file=program)
    token = await emu.token()
    assert (await emu.track(token, {"trackingType": "PRODUCTION"})).status_code == 404  # not the default path
    response = await emu.client.post(
        "/banking/v1/issuers/TESTISS001/trackedCards/card-0001",
        json={"trackingType": "PRODUCTION"},
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202
    assert (await emu.status(token)).status_code == 404
