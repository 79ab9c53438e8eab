"""The emulator as D1: auth answers, pull & change decisions by production stage, scenarios,
INSTANT production, BULK containers. Notifications are captured (no receiver needed)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.contract.conftest import D1, ISSUER_ID, unique
from tests.support.orders import sample_order

ADDRESS = {"line1": "5 Harbour Rd", "city": "Boston", "zipCode": "02108", "countryCode": "US"}


async def ordered(d1: D1, *, step_ms: int | None = None, **overrides: Any) -> str:
    """Order a card (optionally with its own pace) and return its cardId."""
    card_id = unique("emu")
    if step_ms is not None:
        await d1.admin(
            "POST", "/scenarios", json={"rules": [{"match": {"cardIdPrefix": card_id}, "stepDelayMs": step_ms}]}
        )
    order = sample_order(unique("req"), card_id=card_id, **overrides)
    _, body = d1.d1_request(order)
    response = await d1.order(card_id, body)
    assert response.status_code == 202, response.text
    return card_id


def captured(d1: D1, card_id: str) -> list[dict[str, Any]]:
    return [op for body in d1.state.notifier.captured for op in body["operations"] if op["cardId"] == card_id]


async def until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_auth_and_conflict_answers_name_the_field(d1: D1) -> None:
    card_id = await ordered(d1)
    _, body = d1.d1_request(sample_order(unique("req"), card_id=card_id))
    conflict = await d1.order(card_id, body)
    assert conflict.status_code == 409
    assert conflict.json()["errorCode"] == "CARD_ALREADY_ORDERED"
    assert conflict.json()["error"] == "cardId"
    other_issuer = await d1.client.post(
        f"/banking/v1/issuers/OTHERISS02/physicalCards/{card_id}/operations:pullAndChange",
        json={"type": "CANCEL"},
        headers={"authorization": f"Bearer {await d1.token()}"},
    )
    assert other_issuer.status_code == 403 and other_issuer.json()["error"] == "issuerId"
    bad_token = await d1.client.post(
        f"/banking/v1/issuers/{ISSUER_ID}/physicalCards/{card_id}/operations:pullAndChange",
        json={"type": "CANCEL"},
        headers={"authorization": "Bearer nope"},
    )
    assert bad_token.status_code == 401 and bad_token.json()["errorCode"] == "AUTHORIZER_UNAUTHORIZED"


async def test_pull_and_change_requests_are_validated(d1: D1) -> None:
    card_id = await ordered(d1)
    cases = [
        ({"type": "DESTROY"}, "FIELD_INVALID_VALUE", "$.type"),
        ({}, "FIELD_INVALID_FORMAT", "$.type"),
        ({"type": "REDIRECT"}, "FIELD_INVALID_FORMAT", "$.newDeliveryAddress"),
        ({"type": "CANCEL", "newDeliveryAddress": ADDRESS}, "FIELD_INVALID_VALUE", "$.newDeliveryAddress"),
        (
            {"type": "REDIRECT", "newDeliveryAddress": {**ADDRESS, "countryCode": "JP"}},
            "FIELD_INVALID_VALUE",
            "$.newDeliveryAddress.countryCode",
        ),
        (
            {"type": "REDIRECT", "newDeliveryAddress": {**ADDRESS, "line1": ""}},
            "FIELD_INVALID_FORMAT",
            "$.newDeliveryAddress.line1",
        ),
    ]
    before = d1.state.stats.pull_and_change_requests
    for body, code, path in cases:
        response = await d1.pull_and_change(card_id, body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["errorCode"] == code, body
        assert response.json()["error"] == path, body
    unknown = await d1.pull_and_change(unique("never"), {"type": "CANCEL"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "cardId"
    assert d1.state.stats.pull_and_change_requests == before


async def test_cancel_is_accepted_before_shipment_and_idempotent(d1: D1) -> None:
    card_id = await ordered(d1)  # paused at CARD_PROD_REQUESTED (the fixture's long steps)
    first = await d1.pull_and_change(card_id, {"type": "CANCEL"}, correlation_id="change-1")
    again = await d1.pull_and_change(card_id, {"type": "CANCEL"}, correlation_id="change-1")
    assert first.status_code == again.status_code == 202
    assert first.json()["operationId"] == again.json()["operationId"]
    await until(lambda: any(op["details"]["status"] == "CARD_PROD_CANCELED" for op in captured(d1, card_id)))
    ops = captured(d1, card_id)
    assert [(op["operation"], op["details"]["status"]) for op in ops] == [
        ("PRODUCE", "CARD_PROD_REQUESTED"),
        ("UPDATE_ORDER", "ACCEPTED"),
        ("PRODUCE", "CARD_PROD_CANCELED"),
    ]
    update = ops[1]
    assert update["status"] == "SUCCESSFUL" and update["operationId"] == first.json()["operationId"]
    assert update["details"] == {
        "type": "CANCEL",
        "status": "ACCEPTED",
        "reason": "CANCEL accepted by the personalization center",
        "productionStatus": "CARD_PROD_REQUESTED",
    }
    assert update["issuerRequestId"] == ops[0]["issuerRequestId"]
    assert ops[2]["status"] == "FAILED" and "errorCode" not in ops[2]
    # The order is over: a new change is refused (asynchronously, like D1).
    late = await d1.pull_and_change(card_id, {"type": "ACCELERATE"}, correlation_id="change-2")
    assert late.status_code == 202
    await until(lambda: len(captured(d1, card_id)) == 4)
    refused = captured(d1, card_id)[3]
    assert refused["status"] == "FAILED" and refused["details"]["status"] == "REFUSED"
    assert refused["errorCode"] == "EMU_UPDATE_REFUSED" and "already finished" in refused["details"]["reason"]


async def test_changes_are_decided_by_production_stage(d1: D1) -> None:
    card_id = await ordered(d1, step_ms=30)

    def at(status: str) -> bool:
        order = d1.state.orders.latest(ISSUER_ID, card_id)
        return order is not None and order.production_status == status

    await until(lambda: at("CARD_PROD_ONGOING"), timeout=10)
    redirect = await d1.pull_and_change(card_id, {"type": "REDIRECT", "newDeliveryAddress": ADDRESS})
    assert redirect.status_code == 202
    updates = [op for op in captured(d1, card_id) if op["operation"] == "UPDATE_ORDER"]
    assert updates[0]["details"]["status"] == "REFUSED"
    assert updates[0]["details"]["reason"].startswith("too late")
    order = d1.state.orders.latest(ISSUER_ID, card_id)
    assert order is not None and order.delivery_address is not None and order.delivery_address["city"] == "New York"
    await until(lambda: d1.state.orders.latest(ISSUER_ID, card_id).finished, timeout=10)  # type: ignore[union-attr]
    statuses = [op["details"].get("shipment", {}).get("status") for op in captured(d1, card_id)]
    assert statuses[-1] == "Delivered"


async def test_instant_order_is_produced_at_the_station(d1: D1) -> None:
    order = sample_order(
        unique("req"),
        card_id=unique("inst"),
        distributionChannel="INSTANT",
        persoStation="BRANCH-042-ST1",
        services={"issuance": "REPLACEMENT"},
    )
    del order["shipment"]
    await d1.admin(
        "POST", "/scenarios", json={"rules": [{"match": {"cardIdPrefix": order["cardId"]}, "stepDelayMs": 10}]}
    )
    card_id, body = d1.d1_request(order)
    assert (await d1.order(card_id, body)).status_code == 202
    await until(lambda: d1.state.orders.latest(ISSUER_ID, card_id).finished)  # type: ignore[union-attr]
    ops = captured(d1, card_id)
    assert [(op["status"], op["details"]["status"]) for op in ops] == [
        ("PENDING", "CARD_PROD_REQUESTED"),
        ("PENDING", "CARD_PROD_READY"),
        ("SUCCESSFUL", "CARD_PROD_DONE"),
    ]


async def test_scenarios_are_listed_and_match_markers(d1: D1) -> None:
    rules = await d1.admin("GET", "/scenarios")
    prefixes = [r["match"]["cardIdPrefix"] for r in rules["builtIn"]]
    assert prefixes == [
        "emu-data-exception",
        "emu-prod-exception",
        "emu-on-hold",
        "emu-returned",
        "emu-not-delivered",
        "emu-activated",
        "emu-early-activation",
    ]
    bad = await d1.client.post("/_emulator/scenarios", json={"rules": [{"match": {}, "scenario": "ON_HOLD"}]})
    assert bad.status_code == 400
    card_id = unique("emu-returned")
    await d1.admin(
        "POST",
        "/scenarios",
        json={
            "rules": [
                {
                    "match": {"cardIdPrefix": card_id},
                    "stepDelayMs": 5,
                    "scenario": "RETURNED",
                    "reason": "refused by addressee",
                }
            ]
        },
    )
    _, body = d1.d1_request(sample_order(unique("req"), card_id=card_id))
    assert (await d1.order(card_id, body)).status_code == 202
    await until(lambda: d1.state.orders.latest(ISSUER_ID, card_id).finished)  # type: ignore[union-attr]
    last = captured(d1, card_id)[-1]
    assert last["details"]["status"] == "CARD_RETURNED" and last["details"]["reason"] == "refused by addressee"
    assert last["details"]["shipment"]["status"] == "Returned"


async def test_bulk_container_waits_for_its_cards_and_ships_them_in_one_body(d1: D1) -> None:
    group = unique("box")
    await d1.admin("POST", "/groups", json={"windowMs": 300})
    try:
        shipment = {"type": "BULK", "groupId": group, "deliveryAddress": {**ADDRESS, "companyName": "Branch 9"}}
        cards = [unique("bulk") for _ in range(3)]
        for i, card_id in enumerate(cards):
            # The last card is slower: the container waits for it.
            step = 40 if i == 2 else 5
            await d1.admin(
                "POST", "/scenarios", json={"rules": [{"match": {"cardIdPrefix": card_id}, "stepDelayMs": step}]}
            )
            _, body = d1.d1_request(sample_order(unique("req"), card_id=card_id, shipment=shipment))
            assert (await d1.order(card_id, body)).status_code == 202
        await until(lambda: all(d1.state.orders.latest(ISSUER_ID, c).finished for c in cards), timeout=10)  # type: ignore[union-attr]
    finally:
        await d1.admin("POST", "/groups", json={"windowMs": 1000})
    bodies = [
        b for b in d1.state.notifier.captured if len(b["operations"]) > 1 and b["operations"][0]["cardId"] in cards
    ]
    assert [len(b["operations"]) for b in bodies] == [3, 3, 3, 3]
    assert {op["cardId"] for op in bodies[0]["operations"]} == set(cards)
    assert {op["details"]["status"] for op in bodies[0]["operations"]} == {"CARD_SHIPPED"}
    assert len({op["details"]["shipment"]["trackingNumber"] for b in bodies for op in b["operations"]}) == 1
    groups = (await d1.admin("GET", "/groups"))["groups"]
    mine = [g for g in groups if g["groupId"] == group]
    assert mine[0]["state"] == "shipped" and mine[0]["bodies"] == [3, 3, 3, 3]
    # A card waiting in a container cannot be redirected on its own (refused by the center).
    waiting = unique("bulk")
    _, body = d1.d1_request(sample_order(unique("req"), card_id=waiting, shipment={**shipment, "groupId": unique("g")}))
    assert (await d1.order(waiting, body)).status_code == 202
    assert (await d1.pull_and_change(waiting, {"type": "REDIRECT", "newDeliveryAddress": ADDRESS})).status_code == 202
    update = next(op for op in captured(d1, waiting) if op["operation"] == "UPDATE_ORDER")
    assert update["details"]["status"] == "REFUSED" and "BULK" in update["details"]["reason"]
