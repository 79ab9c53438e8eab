"""Card order and productionStatus endpoints: auth, validation, idempotency, production flow."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from emulator_support import ISSUER_ID, TEST_PAN, Emulator

from d1.notifications import OperationNotification
from d1.order import CardOrder

EXPECTED_FLOW: list[tuple[str, str, str | None]] = [
    ("PENDING", "CARD_PROD_REQUESTED", None),
    ("PENDING", "DATA_PREPARED", None),
    ("PENDING", "CARD_PROD_READY", None),
    ("PENDING", "CARD_PROD_ONGOING", None),
    ("PENDING", "CARD_PROD_DONE", None),
    ("SUCCESSFUL", "CARD_SHIPPED", "InfoReceived"),
    ("SUCCESSFUL", "CARD_SHIPPED", "InTransit"),
    ("SUCCESSFUL", "CARD_SHIPPED", "OutForDelivery"),
    ("SUCCESSFUL", "CARD_SHIPPED", "Delivered"),
]


def _flow(ops: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return [(op["status"], op["details"]["status"], (op["details"].get("shipment") or {}).get("status")) for op in ops]


def _delivered(ops: list[dict[str, Any]]) -> bool:
    return any((op["details"].get("shipment") or {}).get("status") == "Delivered" for op in ops)


async def test_order_accepted_and_notified_in_order_until_delivered(emu: Emulator) -> None:
    token = await emu.token()
    response = await emu.order(token)
    assert response.status_code == 202
    operation_id = response.json()["operationId"]

    await emu.receiver.wait_for(_delivered)
    ops = emu.receiver.operations()
    assert _flow(ops) == EXPECTED_FLOW
    assert {op["operationId"] for op in ops} == {operation_id}
    assert {op["cardId"] for op in ops} == {"card-0001"}
    assert {op["issuerRequestId"] for op in ops} == {"req-0001"}
    assert {op["operation"] for op in ops} == {"PRODUCE"}
    assert len({op["startTime"] for op in ops}) == 1
    assert ops[0]["startTime"].endswith("Z") and len(ops[0]["startTime"]) == len("2026-03-01T09:15:02.120Z")
    assert "dueDate" not in ops[0]["details"]
    for op in ops[1:]:
        assert op["details"]["productionSite"] == "EMU-SITE-01"
        assert len(op["details"]["dueDate"]) == 10
    for op in ops[:5]:
        assert "endTime" not in op and "shipment" not in op["details"]
    shipped = ops[5:]
    assert len({op["details"]["shipment"]["trackingNumber"] for op in shipped}) == 1
    assert all(op["details"]["shipment"]["carrier"] == "dhl" and op["endTime"] for op in shipped)
    assert all(op["details"]["shipment"]["message"] for op in shipped)
    assert all(path == f"/notifications/d1/v2/issuers/{ISSUER_ID}/cards" for path in emu.receiver.paths)
    assert set(emu.receiver.correlation_ids) == {operation_id}  # no x-correlation-id on the order

    status = await emu.status(token)
    assert status.status_code == 200
    assert status.json() == {"operations": [ops[-1]]}

    stats = await emu.stats()
    assert stats["submissions"] == {"req-0001": 1}
    assert stats["repeats"] == {}
    assert stats["orderRequests"] == 1
    assert stats["notificationsSent"] == len(EXPECTED_FLOW)
    assert stats["notificationAttempts"] == len(EXPECTED_FLOW)


async def test_idempotent_repeat_returns_same_operation_and_no_new_notifications(emu: Emulator) -> None:
    token = await emu.token()
    first = await emu.order(token)
    # A retry re-encrypts the card data (new JWE), as a real client would.
    second = await emu.order(token, body=emu.order_body())
    assert first.status_code == second.status_code == 202
    assert first.json()["operationId"] == second.json()["operationId"]

    await emu.receiver.wait_for(_delivered)
    third = await emu.order(token)  # even after the order finished
    assert third.json()["operationId"] == first.json()["operationId"]
    stats = await emu.stats()
    assert stats["submissions"] == {"req-0001": 1}
    assert stats["repeats"] == {"req-0001": 2}
    assert stats["orderRequests"] == 3
    assert _flow(emu.receiver.operations()) == EXPECTED_FLOW


async def test_second_request_id_on_open_card_conflicts_until_the_order_finished(emu: Emulator) -> None:
    token = await emu.token()
    assert (await emu.order(token)).status_code == 202
    conflict = await emu.order(token, body=emu.order_body("req-0002"))
    assert conflict.status_code == 409
    assert conflict.json()["errorCode"] == "CARD_ALREADY_ORDERED"
    # Another card is independent.
    assert (await emu.order(token, card_id="card-0002", body=emu.order_body("req-0002"))).status_code == 202

    await emu.wait_status(token, lambda op: (op["details"].get("shipment") or {}).get("status") == "Delivered")
    reorder = await emu.order(token, body=emu.order_body("req-0003"))
    assert reorder.status_code == 202
    status = (await emu.status(token)).json()["operations"][0]
    assert status["issuerRequestId"] == "req-0003"
    assert (await emu.stats())["submissions"] == {"req-0001": 1, "req-0002": 1, "req-0003": 1}


async def test_order_without_issuer_request_id_is_correlated_by_card(emu: Emulator) -> None:
    """issuerRequestId is conditional for D1: without it the card is the correlation key."""
    token = await emu.token()
    body = emu.order_body()
    del body["issuerRequestId"]
    first = await emu.order(token, body=body)
    again = await emu.order(token, body={**body, "encryptedData": emu.encrypt({"pan": TEST_PAN, "exp": "2906"})})
    assert first.status_code == again.status_code == 202, first.text
    assert first.json()["operationId"] == again.json()["operationId"]
    # Another request under an issuerRequestId while that order is open is a conflict.
    conflict = await emu.order(token, body=emu.order_body("req-0002"))
    assert conflict.status_code == 409
    assert conflict.json()["errorCode"] == "CARD_ALREADY_ORDERED" and conflict.json()["error"] == "cardId"

    await emu.receiver.wait_for(_delivered)
    ops = emu.receiver.operations()
    assert _flow(ops) == EXPECTED_FLOW  # one production, notified once per step
    assert all("issuerRequestId" not in op and "issuerRequestId" not in op["details"] for op in ops)
    stats = await emu.stats()
    assert stats["submissions"] == {} and stats["repeats"] == {}
    assert stats["cards"]["card-0001"] == {
        "accepted": 1,
        "single": 1,
        "batch": 0,
        "repeats": 1,
        "refused": 1,
        "produced": 1,
        # Without an issuerRequestId the order is keyed by the card ("").
        "requests": {"": {"first": 1, "repeat": 1, "refused": 0}, "req-0002": {"first": 0, "repeat": 0, "refused": 1}},
    }
    # Finished: the card can be ordered again, with or without an issuerRequestId.
    reorder = await emu.order(token, body=body)
    assert reorder.status_code == 202 and reorder.json()["operationId"] != first.json()["operationId"]


async def test_open_order_with_request_id_conflicts_with_one_without(emu: Emulator) -> None:
    token = await emu.token()
    assert (await emu.order(token)).status_code == 202
    body = emu.order_body()
    del body["issuerRequestId"]
    conflict = await emu.order(token, body=body)
    assert conflict.status_code == 409 and conflict.json()["errorCode"] == "CARD_ALREADY_ORDERED"


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer", ""])
async def test_order_and_status_need_a_valid_token(emu: Emulator, authorization: str | None) -> None:
    headers = {"authorization": authorization} if authorization is not None else {}
    order = await emu.client.post(
        f"/banking/v1/issuers/{ISSUER_ID}/physicalCards/card-0001/operations:production",
        json=emu.order_body(),
        headers=headers,
    )
    assert order.status_code == 401
    assert order.json() == {
        "errorCode": "AUTHORIZER_UNAUTHORIZED",
        "error": "The provided Authorization header is missing or invalid",
    }
    status = await emu.client.get(
        f"/banking/v1/issuers/{ISSUER_ID}/physicalCards/card-0001/productionStatus", headers=headers
    )
    assert status.status_code == 401
    assert (await emu.stats())["submissions"] == {}


async def test_expired_token_is_refused(emulator_factory: Any) -> None:
    emu: Emulator = await emulator_factory(token_lifetime_s=1)
    token = await emu.token()
    emu.state.tokens._clock = lambda: time.time() + 5  # jump past the expiry
    assert (await emu.order(token)).status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/banking/v1/issuers/TESTISS001/physicalcards/card-0001/operations:production",
        "/banking/v1/issuers/TESTISS001/physicalCards/card-0001/operations/production",
        "/BANKING/V1/ISSUERS/TESTISS001/PHYSICALCARDS/card-0001/OPERATIONS:PRODUCTION",
    ],
)
async def test_order_path_spellings(emu: Emulator, path: str) -> None:
    token = await emu.token()
    response = await emu.order(token, path=path)
    assert response.status_code == 202
    status = await emu.client.get(
        "/banking/v1/issuers/TESTISS001/physicalcards/card-0001/productionstatus",
        headers={"authorization": f"Bearer {token}"},
    )
    assert status.status_code == 200
    assert status.json()["operations"][0]["operationId"] == response.json()["operationId"]


async def test_status_of_unknown_card_is_404(emu: Emulator) -> None:
    token = await emu.token()
    response = await emu.status(token, card_id="never-ordered")
    assert response.status_code == 404
    assert response.json() == {
        "errorCode": "NOT_FOUND",
        "error": "cardId",
        "reason": "no card order is known for this cardId",
    }


def _assert_no_card_data(text: str) -> None:
    assert TEST_PAN not in text
    assert TEST_PAN[:6] not in text and "2906" not in text


def _replace_jwe_tag(compact: str) -> str:
    parts = compact.split(".")
    parts[4] = ("A" if parts[4][0] != "A" else "B") + parts[4][1:]
    return ".".join(parts)


def _jwe_with_plaintext(emu: Emulator, plaintext: bytes) -> str:
    from jwcrypto import jwe

    header = {"alg": "ECDH-ES", "enc": "A256GCM", "kid": emu.encryption_public["kid"]}
    token = jwe.JWE(plaintext, protected=json.dumps(header))
    token.add_recipient(emu.encryption_public)
    result: str = token.serialize(compact=True)
    return result


# (id, mutation of a valid body, errorCode, error = the JSON path of the field in error)
INVALID_ORDERS: list[tuple[str, Any, str, str]] = [
    (
        "country-format",
        lambda b, e: b["shipment"]["deliveryAddress"].update(countryCode="usa"),
        "FIELD_INVALID_FORMAT",
        "$.shipment.deliveryAddress.countryCode",
    ),
    (
        "country-unassigned",
        lambda b, e: b["shipment"]["deliveryAddress"].update(countryCode="XX"),
        "FIELD_INVALID_FORMAT",
        "$.shipment.deliveryAddress.countryCode",
    ),
    (
        "country-not-allowed",
        lambda b, e: b["shipment"]["deliveryAddress"].update(countryCode="JP"),
        "FIELD_INVALID_VALUE",
        "$.shipment.deliveryAddress.countryCode",
    ),
    ("issuance-missing", lambda b, e: b["services"].pop("issuance"), "FIELD_INVALID_FORMAT", "$.services.issuance"),
    (
        "issuance-value",
        lambda b, e: b["services"].update(issuance="UPGRADE"),
        "FIELD_INVALID_VALUE",
        "$.services.issuance",
    ),
    ("shipment-missing", lambda b, e: b.pop("shipment"), "FIELD_INVALID_FORMAT", "$.shipment"),
    ("channel-missing", lambda b, e: b.pop("distributionChannel"), "FIELD_INVALID_FORMAT", "$.distributionChannel"),
    (
        "channel-value",
        lambda b, e: b.update(distributionChannel="POST"),
        "FIELD_INVALID_VALUE",
        "$.distributionChannel",
    ),
    ("consumer-missing", lambda b, e: b.pop("consumerId"), "FIELD_INVALID_FORMAT", "$.consumerId"),
    ("consumer-format", lambda b, e: b.update(consumerId="has space"), "FIELD_INVALID_FORMAT", "$.consumerId"),
    ("product-unknown", lambda b, e: b.update(cardProductId="NOT_OURS"), "FIELD_INVALID_VALUE", "$.cardProductId"),
    (
        "delivery-unknown",
        lambda b, e: b["services"].update(delivery="pigeon"),
        "FIELD_INVALID_VALUE",
        "$.services.delivery",
    ),
    (
        "group-on-individual",
        lambda b, e: b["shipment"].update(groupId="box-1"),
        "FIELD_INVALID_VALUE",
        "$.shipment.groupId",
    ),
    (
        "insert-unknown",
        lambda b, e: b.update(packagingConfig={"inserts": ["welcome-letter", "flyer-x"]}),
        "FIELD_INVALID_VALUE",
        "$.packagingConfig.inserts[1]",
    ),
    (
        "jwe-kid-unknown",
        lambda b, e: b.update(encryptedData=e.encrypt({"pan": TEST_PAN, "exp": "2906"}, kid="someone-elses-key")),
        "CRYPTO_ERROR",
        "$.encryptedData",
    ),
    ("jwe-not-compact", lambda b, e: b.update(encryptedData="not.a.jwe"), "CRYPTO_ERROR", "$.encryptedData"),
    (
        "jwe-tag",
        lambda b, e: b.update(encryptedData=_replace_jwe_tag(b["encryptedData"])),
        "CRYPTO_ERROR",
        "$.encryptedData",
    ),
    (
        "plaintext-not-json",
        lambda b, e: b.update(encryptedData=_jwe_with_plaintext(e, b"pan=4111111111111111")),
        "PARSING_ERROR",
        "$.encryptedData",
    ),
    (
        "plaintext-not-object",
        lambda b, e: b.update(encryptedData=_jwe_with_plaintext(e, b'["4111111111111111"]')),
        "PARSING_ERROR",
        "$.encryptedData",
    ),
    ("encrypted-missing", lambda b, e: b.pop("encryptedData"), "FIELD_INVALID_FORMAT", "$.encryptedData"),
    (
        "luhn",
        lambda b, e: b.update(encryptedData=e.encrypt({"pan": "4111111111111112", "exp": "2906"})),
        "FIELD_INVALID_FORMAT",
        "$.encryptedData.pan",
    ),
    (
        "exp-missing",
        lambda b, e: b.update(encryptedData=e.encrypt({"pan": TEST_PAN})),
        "FIELD_INVALID_FORMAT",
        "$.encryptedData.exp",
    ),
    (
        "exp-month",
        lambda b, e: b.update(encryptedData=e.encrypt({"pan": TEST_PAN, "exp": "2913"})),
        "FIELD_INVALID_FORMAT",
        "$.encryptedData.exp",
    ),
    (
        "cvv2",
        lambda b, e: b.update(encryptedData=e.encrypt({"pan": TEST_PAN, "exp": "2906", "cvv2": "12345"})),
        "FIELD_INVALID_FORMAT",
        "$.encryptedData.cvv2",
    ),
    (
        "card-data-unknown-member",
        lambda b, e: b.update(encryptedData=e.encrypt({"pan": TEST_PAN, "exp": "2906", "pin": "1234"})),
        "FIELD_INVALID_FORMAT",
        "$.encryptedData.pin",
    ),
    ("clear-pan", lambda b, e: b.update(pan=TEST_PAN), "FIELD_INVALID_FORMAT", "$.pan"),
    (
        "station-on-thales",
        lambda b, e: b.update(persoStation="BRANCH-017-ST1"),
        "FIELD_INVALID_VALUE",
        "$.persoStation",
    ),
    (
        "track-layout",
        lambda b, e: b.update(
            encryptedData=e.encrypt({"pan": TEST_PAN, "exp": "2906", "trackData": {"track2": "not-a-track"}})
        ),
        "FIELD_INVALID_FORMAT",
        "$.encryptedData.trackData.track2",
    ),
    (
        "clear-track-data",
        lambda b, e: b.update(trackData={"track2": f"{TEST_PAN}=29061010000000000000"}),
        "FIELD_INVALID_VALUE",
        "$.trackData",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "code", "field"), [c[1:] for c in INVALID_ORDERS], ids=[c[0] for c in INVALID_ORDERS]
)
async def test_invalid_orders_name_the_field_and_never_echo_card_data(
    emu: Emulator, mutate: Any, code: str, field: str
) -> None:
    token = await emu.token()
    body = emu.order_body()
    mutate(body, emu)
    response = await emu.order(token, body=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert (error["errorCode"], error["error"]) == (code, field), error
    assert set(error) == {"errorCode", "error", "reason"} and error["reason"]
    _assert_no_card_data(response.text)
    stats = await emu.stats()
    assert stats["submissions"] == {}
    assert stats["cards"]["card-0001"]["refused"] == 1 and stats["cards"]["card-0001"]["accepted"] == 0
    assert emu.receiver.bodies == []


async def test_tampered_jwe_tag_is_a_crypto_error(emu: Emulator) -> None:
    token = await emu.token()
    body = emu.order_body()
    body["encryptedData"] = _replace_jwe_tag(body["encryptedData"])
    response = await emu.order(token, body=body)
    assert response.status_code == 400
    assert response.json() == {"errorCode": "CRYPTO_ERROR", "error": "$.encryptedData", "reason": "decryption failed"}


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/banking/v1/issuers/TESTISS001/physicalCards/card*1/operations:production", "cardId"),
        ("/banking/v1/issuers/SHORT/physicalCards/card-1/operations:production", "issuerId"),
    ],
)
async def test_bad_path_identifiers(emu: Emulator, path: str, field: str) -> None:
    token = await emu.token()
    response = await emu.order(token, path=path)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "FIELD_INVALID_FORMAT"
    assert response.json()["error"] == field


async def test_mmyy_expiry_format(emulator_factory: Any) -> None:
    emu: Emulator = await emulator_factory(expiry_format="MMYY")
    token = await emu.token()
    yymm = emu.order_body()  # exp "2906": month 29 in MMYY
    assert (await emu.order(token, body=yymm)).json()["errorCode"] == "FIELD_INVALID_FORMAT"
    body = emu.order_body()
    body["encryptedData"] = emu.encrypt({"pan": TEST_PAN, "exp": "0629"})
    assert (await emu.order(token, body=body)).status_code == 202


async def test_track_data_inside_the_plaintext_is_accepted(emu: Emulator) -> None:
    token = await emu.token()
    body = emu.order_body()
    body["encryptedData"] = emu.encrypt(
        {"pan": TEST_PAN, "exp": "2906", "trackData": {"track2": f"{TEST_PAN}=29061010000000000000"}}
    )
    assert (await emu.order(token, body=body)).status_code == 202


@pytest.mark.parametrize(
    ("placement", "inside", "outside"),
    [
        ("encrypted", 202, ("FIELD_INVALID_VALUE", "$.trackData")),
        ("clear", ("FIELD_INVALID_VALUE", "$.encryptedData.trackData"), 202),
    ],
)
async def test_track_data_travels_where_the_program_says(
    emulator_factory: Any, tmp_path: Any, placement: str, inside: Any, outside: Any
) -> None:
    from emulator_support import write_program

    emu: Emulator = await emulator_factory(
        program_file=write_program(tmp_path / "program.json", trackDataPlacement=placement)
    )
    token = await emu.token()
    track = {"track2": f"{TEST_PAN}=29061010000000000000"}
    results = []
    for card_id, encrypted in (("card-in", True), ("card-out", False)):
        body = emu.order_body(f"req-{card_id}")
        if encrypted:
            body["encryptedData"] = emu.encrypt({"pan": TEST_PAN, "exp": "2906", "trackData": track})
        else:
            body["trackData"] = track
        response = await emu.order(token, card_id=card_id, body=body)
        results.append(202 if response.status_code == 202 else (response.json()["errorCode"], response.json()["error"]))
    assert results == [inside, outside]


async def test_body_built_by_the_shared_contract_model_is_accepted(emu: Emulator) -> None:
    order = CardOrder.model_validate(
        {
            "issuerId": ISSUER_ID,
            "cardId": "card-contract",
            "issuerRequestId": "req-contract",
            "consumerId": "cust-contract",
            "cardProductId": "DEMO_VISA_DEBIT_01",
            "services": {"issuance": "RENEWAL", "delivery": "laposte-cip"},
            "paymentApplication": {"config": "DEMO", "odaKeyIndex": "01", "derivationKeyIndex": "02"},
            "shipment": {
                "deliveryAddress": {"line1": "1 A St", "city": "Paris", "zipCode": "75001", "countryCode": "FR"}
            },
            "cardData": {"pan": TEST_PAN, "exp": "2906", "name": "JANE SAMPLE"},
            "trackData": {"track2": f"{TEST_PAN}=2906101"},
        }
    )
    body = order.d1_body(emu.encrypt(order.sensitive_plaintext()))
    token = await emu.token()
    response = await emu.order(token, card_id=order.cardId, body=body)
    assert response.status_code == 202, response.text
    op = (await emu.status(token, card_id=order.cardId)).json()["operations"][0]
    assert OperationNotification.model_validate(op).request_id == "req-contract"
