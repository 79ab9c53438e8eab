"""Ordering through the issuer API on the real stack: the first order to DELIVERED, idempotent
retries (one after the other and 20 at once), 409s, field problems, limits, pagination."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from tests.conftest import ISSUER_ID, new_request_id
from tests.issuer_api.conftest import CLIENT_ID, Api
from tests.support.orders import TEST_PAN, sample_order

PROBLEM = "application/problem+json"


async def wait_outcome(api: Api, request_id: str, timeout: float = 60) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    async with api.client() as http:
        while True:
            resp = await http.get(f"{api.orders_path()}/{request_id}")
            assert resp.status_code == 200, resp.text
            view = resp.json()
            if view["outcome"] is not None:
                return view
            assert asyncio.get_running_loop().time() < deadline, view
            await asyncio.sleep(0.2)


async def test_first_order_goes_to_delivered(api: Api) -> None:
    rid = new_request_id("api-first")
    async with api.client() as http:
        resp = await http.post(api.orders_path(), json=sample_order(rid))
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == f"{api.orders_path()}/{rid}"
    body = resp.json()
    assert body["id"] == f"card-order:{ISSUER_ID}:{rid}"
    assert body["maskedPan"] == "4111********1111"  # at most half the digits (d1/masking.py)
    assert body["requestedBy"] == {"clientId": CLIENT_ID, "person": "alice"}
    assert TEST_PAN not in resp.text and "JANE SAMPLE" not in resp.text

    view = await wait_outcome(api, rid)
    assert view["outcome"] == "DELIVERED"
    assert view["requestedBy"] == {"clientId": CLIENT_ID, "person": "alice"}
    async with api.client() as http:
        timeline = (await http.get(f"{api.orders_path()}/{rid}/timeline")).json()
    texts = [line["text"] for line in timeline["lines"]]
    assert "order started" in texts and any("CARD_SHIPPED" in t for t in texts)


async def test_the_same_request_again_is_the_same_order(api: Api) -> None:
    order = sample_order(new_request_id("api-again"))
    async with api.client() as http:
        first = await http.post(api.orders_path(), json=order)
        second = await http.post(api.orders_path(), json=order)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert second.headers["location"] == first.headers["location"]


async def test_twenty_concurrent_duplicates_make_one_order(api: Api) -> None:
    order = sample_order(new_request_id("api-herd"))
    async with api.client() as http:
        answers = await asyncio.gather(*(http.post(api.orders_path(), json=order) for _ in range(20)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 19 + [201], [a.text for a in answers if a.status_code not in (200, 201)]
    assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
    runs = [wf async for wf in api.stack.client.list_workflows(f'WorkflowId = "{answers[0].json()["id"]}"')]
    assert len(runs) == 1


async def test_the_same_id_with_another_body_is_a_conflict(api: Api) -> None:
    rid = new_request_id("api-conflict")
    async with api.client() as http:
        assert (await http.post(api.orders_path(), json=sample_order(rid))).status_code == 201
        other = sample_order(rid, consumerId="cust-999999")
        resp = await http.post(api.orders_path(), json=other)
    assert resp.status_code == 409
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["type"].endswith("/idempotency-conflict")


async def test_a_card_with_an_open_order_is_refused(api: Api) -> None:
    rid = new_request_id("api-busy")
    card = f"busy-{rid}"
    await api.stack.emulator(
        "POST", "/_emulator/scenarios", json={"rules": [{"match": {"cardIdPrefix": card}, "stepDelayMs": 2000}]}
    )
    async with api.client() as http:
        assert (await http.post(api.orders_path(), json=sample_order(rid, card_id=card))).status_code == 201
        resp = await http.post(api.orders_path(), json=sample_order(new_request_id("api-busy2"), card_id=card))
    assert resp.status_code == 409 and resp.json()["type"].endswith("/card-busy")


async def test_every_field_problem_at_once_never_echoing_values(api: Api) -> None:
    order = sample_order(new_request_id("api-bad"))
    order["cardData"] = {**order["cardData"], "pan": "4111111111111112", "cvv2": "98765"}
    order["shipment"]["deliveryAddress"]["countryCode"] = "ZZZZ"
    order["mystery"] = "x"
    async with api.client() as http:
        resp = await http.post(api.orders_path(), json=order)
    assert resp.status_code == 400 and resp.headers["content-type"] == PROBLEM
    problem = resp.json()
    paths = {e["path"] for e in problem["errors"]}
    assert {"$.cardData.pan", "$.cardData.cvv2", "$.shipment.deliveryAddress.countryCode", "$.mystery"} <= paths
    for value in ("4111111111111112", "98765", "ZZZZ"):
        assert value not in resp.text


async def test_an_order_for_another_issuer_in_the_body_is_refused(api: Api) -> None:
    order = sample_order(new_request_id("api-path"), issuerId="OTHERISS01")
    async with api.client() as http:
        resp = await http.post(api.orders_path(), json=order)
    assert resp.status_code == 400 and resp.json()["errors"] == [
        {"path": "$.issuerId", "detail": "must be the issuerId of the path"}
    ]


async def test_bodies_that_are_not_orders(api: Api) -> None:
    async with api.client() as http:
        not_json = await http.post(api.orders_path(), content=b"{nope", headers={"content-type": "application/json"})
        array = await http.post(api.orders_path(), json=[1, 2])
        huge = await http.post(api.orders_path(), content=b" " * (api.settings.max_body_bytes + 1))
    assert not_json.status_code == 400 and not_json.json()["type"].endswith("/invalid-json")
    assert array.status_code == 400 and array.json()["errors"][0]["path"] == "$"
    assert huge.status_code == 413 and huge.headers["content-type"] == PROBLEM


async def test_unknown_order_is_404(api: Api) -> None:
    async with api.client() as http:
        resp = await http.get(f"{api.orders_path()}/never-ordered-{new_request_id()}")
        timeline = await http.get(f"{api.orders_path()}/never-ordered-{new_request_id()}/timeline")
    assert resp.status_code == 404 and timeline.status_code == 404
    assert resp.headers["content-type"] == PROBLEM


async def test_pagination_over_more_orders_than_a_page(api: Api) -> None:
    # The orders stay open (D1 takes a minute per step for these cards): an order that closes while
    # a client pages moves to the closed ones and may be listed again (docs/issuer-api.md).
    prefix = f"pg-{new_request_id()[4:12]}"
    rule = {"match": {"cardIdPrefix": prefix}, "stepDelayMs": 60_000}
    await api.stack.emulator("POST", "/_emulator/scenarios", json={"rules": [rule]})
    await asyncio.sleep(1.1)  # visibility compares whole seconds: orders of earlier tests stay out
    since = datetime.now(UTC)
    await asyncio.sleep(1.1)
    ids = [new_request_id("api-page") for _ in range(12)]

    def held(rid: str) -> dict:
        return sample_order(rid, card_id=f"{prefix}-{rid}")

    async with api.client() as http:
        for rid in ids:
            assert (await http.post(api.orders_path(), json=held(rid))).status_code == 201
        params = {"createdAfter": since.isoformat(), "limit": 5}

        async def listed() -> list[tuple[str, str]]:
            seen: list[tuple[str, str]] = []
            cursor: str | None = None
            while True:
                page = await http.get(api.orders_path(), params={**params, **({"cursor": cursor} if cursor else {})})
                assert page.status_code == 200, page.text
                body = page.json()
                assert len(body["data"]) <= 5
                seen += [(o["issuerRequestId"], o["createdAt"]) for o in body["data"]]
                cursor = body.get("nextCursor")
                if cursor is None:
                    return seen
                # An order created between pages appears on no later page and shifts nothing.
                late = new_request_id("api-late")
                assert (await http.post(api.orders_path(), json=held(late))).status_code == 201

        for _ in range(100):  # visibility is eventually consistent
            first = await listed()
            if set(ids) <= {rid for rid, _ in first}:
                break
            await asyncio.sleep(0.2)
    seen = [rid for rid, _ in first]
    assert set(ids) <= set(seen), first
    assert len(seen) == len(set(seen)), f"an order appeared on two pages: {first}"
    created = [datetime.fromisoformat(at) for _, at in first]
    assert created == sorted(created, reverse=True), f"not newest first: {first}"


async def test_list_filters_and_bad_cursor(api: Api) -> None:
    rid = new_request_id("api-filter")
    card = f"flt-{rid}"
    async with api.client() as http:
        assert (await http.post(api.orders_path(), json=sample_order(rid, card_id=card))).status_code == 201
        for _ in range(100):
            page = (await http.get(api.orders_path(), params={"cardId": card})).json()
            if page["data"]:
                break
            await asyncio.sleep(0.2)
        assert [o["issuerRequestId"] for o in page["data"]] == [rid]
        bad = await http.get(api.orders_path(), params={"cursor": "not-a-cursor"})
        status = await http.get(api.orders_path(), params={"status": "Sleeping"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "query:cursor"
    assert status.status_code == 400
