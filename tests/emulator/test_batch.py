"""The batch "Order cards" API: envelope, per-item validation and idempotency, one production
per accepted card, notifications per card, faults, and the exactly-once counters."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from emulator_support import ISSUER_ID, OTHER_ISSUER_ID, TEST_PAN, Emulator, shipment_status, write_program


def _delivered(card_ids: set[str]) -> Any:
    def check(ops: list[dict[str, Any]]) -> bool:
        return {op["cardId"] for op in ops if shipment_status(op) == "Delivered"} >= card_ids

    return check


async def test_batch_accepts_each_card_and_produces_each_once(emu: Emulator) -> None:
    token = await emu.token()
    instant = emu.batch_item("card-b3", "req-b3")
    instant.update(distributionChannel="INSTANT", persoStation="BRANCH-017-ST1", services={"issuance": "CREATION"})
    del instant["shipment"]
    items = [emu.batch_item("card-b1", "req-b1"), emu.batch_item("card-b2", None), instant]
    response = await emu.batch(token, {"cards": items}, headers={"x-correlation-id": "batch-0001"})
    assert response.status_code == 202, response.text
    entries = response.json()["cards"]
    assert [(e["cardId"], e.get("issuerRequestId")) for e in entries] == [
        ("card-b1", "req-b1"),
        ("card-b2", None),
        ("card-b3", "req-b3"),
    ]
    assert all(set(e) <= {"cardId", "issuerRequestId", "operationId"} and e["operationId"] for e in entries)
    assert len({e["operationId"] for e in entries}) == 3

    await emu.receiver.wait_for(_delivered({"card-b1", "card-b2"}))
    await emu.receiver.wait_for(
        lambda ops: any(op["cardId"] == "card-b3" and op["status"] == "SUCCESSFUL" for op in ops)
    )
    ops = emu.receiver.operations()
    for entry in entries:
        mine = [op for op in ops if op["cardId"] == entry["cardId"]]
        assert {op["operationId"] for op in mine} == {entry["operationId"]}
        assert {op["inputFileName"] for op in mine} == {"order-cards-batch-0001"}
        assert mine[0]["details"]["status"] == "CARD_PROD_REQUESTED"
        status = (await emu.status(token, card_id=entry["cardId"])).json()["operations"][0]
        assert status["operationId"] == entry["operationId"]
    assert all("issuerRequestId" not in op for op in ops if op["cardId"] == "card-b2")
    assert [op["details"]["status"] for op in ops if op["cardId"] == "card-b3"] == [
        "CARD_PROD_REQUESTED",
        "CARD_PROD_READY",
        "CARD_PROD_DONE",
    ]

    stats = await emu.stats()
    assert stats["batchRequests"] == 1 and stats["batchCards"] == 3 and stats["batchAccepted"] == 3
    assert stats["orderRequests"] == 0
    rids = {"card-b1": "req-b1", "card-b2": "", "card-b3": "req-b3"}  # "": the item carried none
    for card_id in ("card-b1", "card-b2", "card-b3"):
        assert stats["cards"][card_id] == {
            "accepted": 1,
            "single": 0,
            "batch": 1,
            "repeats": 0,
            "refused": 0,
            "produced": 1,
            "requests": {rids[card_id]: {"first": 1, "repeat": 0, "refused": 0}},
        }
    assert stats["submissions"] == {"req-b1": 1, "req-b3": 1}


async def test_a_batch_item_follows_its_own_required_list(emu: Emulator) -> None:
    """consumerId and cardProductId are required on the single order, not on a batch item."""
    token = await emu.token()
    item = emu.batch_item("card-r1", "req-r1")
    del item["consumerId"], item["cardProductId"]
    entry = (await emu.batch(token, {"cards": [item]})).json()["cards"][0]
    assert "operationId" in entry, entry
    single = emu.order_body("req-r2")
    del single["consumerId"]
    refused = await emu.order(token, card_id="card-r2", body=single)
    assert (refused.status_code, refused.json()["error"]) == (400, "$.consumerId")


# (id, mutation of item 1 of 3, errorCode, error)
BAD_ITEMS: list[tuple[str, Any, str, str]] = [
    ("card-id-missing", lambda i, e: i.pop("cardId"), "FIELD_INVALID_FORMAT", "$.cards[1].cardId"),
    ("card-id-format", lambda i, e: i.update(cardId="card*1"), "FIELD_INVALID_FORMAT", "$.cards[1].cardId"),
    (
        "channel-missing",
        lambda i, e: i.pop("distributionChannel"),
        "FIELD_INVALID_FORMAT",
        "$.cards[1].distributionChannel",
    ),
    ("services-missing", lambda i, e: i.pop("services"), "FIELD_INVALID_FORMAT", "$.cards[1].services"),
    (
        "payment-app-missing",
        lambda i, e: i.pop("paymentApplication"),
        "FIELD_INVALID_FORMAT",
        "$.cards[1].paymentApplication",
    ),
    ("thales-without-shipment", lambda i, e: i.pop("shipment"), "FIELD_INVALID_FORMAT", "$.cards[1].shipment"),
    (
        "product-unknown",
        lambda i, e: i.update(cardProductId="NOT_OURS"),
        "FIELD_INVALID_VALUE",
        "$.cards[1].cardProductId",
    ),
    (
        "country-not-allowed",
        lambda i, e: i["shipment"]["deliveryAddress"].update(countryCode="JP"),
        "FIELD_INVALID_VALUE",
        "$.cards[1].shipment.deliveryAddress.countryCode",
    ),
    (
        "jwe-kid",
        lambda i, e: i.update(encryptedData=e.encrypt({"pan": TEST_PAN, "exp": "2906"}, kid="nope")),
        "CRYPTO_ERROR",
        "$.cards[1].encryptedData",
    ),
    (
        "luhn",
        lambda i, e: i.update(encryptedData=e.encrypt({"pan": "4111111111111112", "exp": "2906"})),
        "FIELD_INVALID_FORMAT",
        "$.cards[1].encryptedData.pan",
    ),
    ("clear-pan", lambda i, e: i.update(pan=TEST_PAN), "FIELD_INVALID_FORMAT", "$.cards[1].pan"),
]


@pytest.mark.parametrize(("mutate", "code", "error"), [b[1:] for b in BAD_ITEMS], ids=[b[0] for b in BAD_ITEMS])
async def test_a_bad_item_is_refused_alone(emu: Emulator, mutate: Any, code: str, error: str) -> None:
    token = await emu.token()
    items = [emu.batch_item(f"card-p{i}", f"req-p{i}") for i in range(3)]
    mutate(items[1], emu)
    response = await emu.batch(token, {"cards": items})
    assert response.status_code == 202, response.text
    entries = response.json()["cards"]
    assert "operationId" in entries[0] and "operationId" in entries[2]
    bad = entries[1]
    assert (bad["errorCode"], bad["error"]) == (code, error), bad
    assert "operationId" not in bad and bad["reason"]
    assert bad.get("cardId") in (None, "card-p1")  # echoed only when well-formed
    assert TEST_PAN not in response.text and "4111111111111112" not in response.text
    stats = await emu.stats()
    assert stats["batchAccepted"] == 2 and stats["batchRefused"] == 1
    assert set(stats["submissions"]) == {"req-p0", "req-p2"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], "$"),
        ("cards", "$"),
        ({}, "$.cards"),
        ({"cards": []}, "$.cards"),
        ({"cards": "card-1"}, "$.cards"),
        ({"cards": [1]}, "$.cards[0]"),
        ({"cards": [{}], "issuerRequestId": "req-1"}, "$.issuerRequestId"),
        ({"cards": [{}, {}, {}]}, "$.cards"),  # more than this program's batchMaxCards (2)
    ],
    ids=["list", "string", "no-cards", "empty", "not-a-list", "item-not-object", "other-member", "too-many"],
)
async def test_a_malformed_envelope_refuses_the_whole_request(
    emulator_factory: Any, tmp_path: Any, body: Any, error: str
) -> None:
    emu: Emulator = await emulator_factory(program_file=write_program(tmp_path / "program.json", batchMaxCards=2))
    token = await emu.token()
    response = await emu.batch(token, body)
    assert response.status_code == 400, response.text
    assert response.json()["errorCode"] == "FIELD_INVALID_FORMAT"
    assert response.json()["error"] == error
    stats = await emu.stats()
    assert stats["batchRequests"] == 1 and stats["batchAccepted"] == 0 and stats["cards"] == {}


async def test_batch_is_idempotent_per_card_across_both_apis(emu: Emulator) -> None:
    token = await emu.token()
    single = await emu.order(token, card_id="card-i1", body=emu.order_body("req-i1"))
    assert single.status_code == 202
    items = [
        emu.batch_item("card-i1", "req-i1"),  # already accepted by the single API: a repeat
        emu.batch_item("card-i2", "req-i2"),
        emu.batch_item("card-i2", "req-i2"),  # the same card twice in one call: a repeat
        emu.batch_item("card-i1", "req-other"),  # open order under another issuerRequestId
    ]
    first = (await emu.batch(token, {"cards": items})).json()["cards"]
    assert first[0]["operationId"] == single.json()["operationId"]
    assert first[1]["operationId"] == first[2]["operationId"]
    assert first[3] == {
        "cardId": "card-i1",
        "issuerRequestId": "req-other",
        "errorCode": "CARD_ALREADY_ORDERED",
        "error": "$.cards[3].cardId",
        "reason": "an order for this card is still open under another issuerRequestId",
    }
    # The client retries the whole batch (e.g. after a timeout): nothing new starts.
    again = (await emu.batch(token, {"cards": items[:3]})).json()["cards"]
    assert [e["operationId"] for e in again] == [e["operationId"] for e in first[:3]]

    await emu.receiver.wait_for(_delivered({"card-i1", "card-i2"}))
    stats = await emu.stats()
    assert stats["cards"]["card-i1"] == {
        "accepted": 1,
        "single": 1,
        "batch": 0,
        "repeats": 2,
        "refused": 1,
        "produced": 1,
        "requests": {
            "req-i1": {"first": 1, "repeat": 2, "refused": 0},
            "req-other": {"first": 0, "repeat": 0, "refused": 1},
        },
    }
    assert stats["cards"]["card-i2"] == {
        "accepted": 1,
        "single": 0,
        "batch": 1,
        "repeats": 3,
        "refused": 0,
        "produced": 1,
        "requests": {"req-i2": {"first": 1, "repeat": 3, "refused": 0}},
    }
    assert stats["submissions"] == {"req-i1": 1, "req-i2": 1}
    assert stats["batchRequests"] == 2 and stats["simulationsRunning"] == 0
    requested = [op for op in emu.receiver.operations() if op["details"]["status"] == "CARD_PROD_REQUESTED"]
    assert sorted(op["cardId"] for op in requested) == ["card-i1", "card-i2"]


async def test_injected_batch_failures_and_the_ambiguous_retry(emu: Emulator) -> None:
    token = await emu.token()
    body = {"cards": [emu.batch_item("card-f1", "req-f1"), emu.batch_item("card-f2", "req-f2")]}
    await emu.faults(batchFailures=[{"status": 503, "retryAfterS": 1}, {"status": 500, "afterProcessing": True}])
    refused = await emu.batch(token, body)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert (await emu.stats())["cards"] == {}
    ambiguous = await emu.batch(token, body)  # processed, then answered 500
    assert ambiguous.status_code == 500
    retry = await emu.batch(token, body)
    assert retry.status_code == 202
    assert (await emu.client.get("/_emulator/faults")).json()["pendingBatchFailures"] == 0
    stats = await emu.stats()
    assert stats["batchRequests"] == 3
    for card_id in ("card-f1", "card-f2"):
        assert stats["cards"][card_id]["accepted"] == 1 and stats["cards"][card_id]["repeats"] == 1
    # Single-order faults do not touch the batch API, and the other way round.
    await emu.faults(orderFailures=[{"status": 502}])
    assert (await emu.batch(token, body)).status_code == 202


async def test_a_batch_cut_mid_response_was_processed(emu: Emulator) -> None:
    token = await emu.token()
    await emu.faults(batchFailureShare={"ratio": 1.0, "kinds": ["cut"], "seed": 7})
    body = {"cards": [emu.batch_item("card-c1", "req-c1")]}
    with pytest.raises(httpx.TransportError):
        await emu.batch(token, body)
    await emu.faults(batchFailureShare={})
    retry = await emu.batch(token, body)
    assert retry.status_code == 202
    stats = await emu.stats()
    assert stats["cards"]["card-c1"]["accepted"] == 1 and stats["cards"]["card-c1"]["repeats"] == 1


async def test_batch_needs_the_issuers_token(emu: Emulator) -> None:
    body = {"cards": [emu.batch_item("card-a1")]}
    missing = await emu.batch("not-a-token", body)
    assert missing.status_code == 401 and missing.json()["errorCode"] == "AUTHORIZER_UNAUTHORIZED"
    token = await emu.token()
    other = await emu.batch(token, body, issuer_id=OTHER_ISSUER_ID)
    assert other.status_code == 403 and other.json()["error"] == "issuerId"
    spelled = await emu.client.post(
        f"/banking/v1/issuers/{ISSUER_ID}/physicalcards/operations/order",
        json=body,
        headers={"authorization": f"Bearer {token}"},
    )
    assert spelled.status_code == 202  # the same tolerance as the documented paths
    assert (await emu.stats())["batchRequests"] == 3


async def test_batch_path_comes_from_the_program_interface(emulator_factory: Any, tmp_path: Any) -> None:
    program = write_program(
        tmp_path / "program.json", batchOrderPath="/issuers/{issuerId}/cards:batch", batchInputFileName=None
    )
    emu: Emulator = await emulator_factory(program_file=program)
    token = await emu.token()
    body = {"cards": [emu.batch_item("card-t1", "req-t1")]}
    default_path = await emu.batch(token, body)
    assert default_path.status_code == 404
    response = await emu.client.post(
        f"/banking/v1/issuers/{ISSUER_ID}/cards:batch", json=body, headers={"authorization": f"Bearer {token}"}
    )
    assert response.status_code == 202
    await emu.receiver.wait_for(lambda ops: len(ops) >= 1)
    assert "inputFileName" not in emu.receiver.operations()[0]


async def test_a_large_batch_stays_responsive(emu: Emulator) -> None:
    """Many cards in one call: each accepted once, and a status call during it is answered."""
    await emu.faults(stepDelayMs=60_000)  # keep the productions parked
    token = await emu.token()
    body = {"cards": [emu.batch_item(f"card-l{i:03d}", f"req-l{i:03d}") for i in range(120)]}
    batch, status = await asyncio.gather(emu.batch(token, body), emu.status(token, card_id="card-l000"))
    assert batch.status_code == 202
    assert status.status_code in (200, 404)
    assert all("operationId" in e for e in batch.json()["cards"])
    stats = await emu.stats()
    assert stats["batchAccepted"] == 120 and len(stats["submissions"]) == 120
