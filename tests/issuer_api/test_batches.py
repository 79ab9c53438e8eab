"""Batches of orders through the API: a JSON array or JSON lines, one invalid card reported with
its problems while the others go on, per-card results read back later; limits answered 413."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import new_request_id
from tests.issuer_api.conftest import Api
from tests.support.orders import TEST_PAN, sample_order


async def read_back(api: Api, location: str, settled: int) -> dict:
    async with api.client() as http:
        for _ in range(100):
            batch = (await http.get(location)).json()
            if sum(r.get("status") is not None for r in batch["results"]) >= settled:
                return batch
            await asyncio.sleep(0.2)
    raise AssertionError(batch)


async def test_a_batch_with_one_invalid_card(api: Api) -> None:
    orders = [sample_order(new_request_id("api-batch")) for _ in range(3)]
    orders[1]["cardData"] = {**orders[1]["cardData"], "pan": "4111111111111112"}
    async with api.client() as http:
        resp = await http.post(f"/v1/issuers/{orders[0]['issuerId']}/card-order-batches", json=orders)
    assert resp.status_code == 202, resp.text
    batch = resp.json()
    assert (batch["cards"], batch["accepted"], batch["rejected"]) == (3, 2, 1)
    results = batch["results"]
    assert [r["result"] for r in results] == ["created", "invalid", "created"]
    assert results[1]["errors"][0]["path"] == "$.cardData.pan" and "4111111111111112" not in resp.text
    later = await read_back(api, resp.headers["location"], settled=2)
    assert [r["result"] for r in later["results"]] == ["created", "invalid", "created"]
    assert later["results"][0]["status"] in ("Running", "Completed")


async def test_json_lines_through_d1_batch_api(api: Api) -> None:
    orders = [sample_order(new_request_id("api-lines")) for _ in range(3)]
    lines = "\n".join(json.dumps(o) for o in orders) + "\n"
    async with api.client() as http:
        resp = await http.post(
            f"/v1/issuers/{orders[0]['issuerId']}/card-order-batches",
            params={"d1Batch": "true"},
            content=lines,
            headers={"content-type": "application/x-ndjson"},
        )
        again = await http.post(
            f"/v1/issuers/{orders[0]['issuerId']}/card-order-batches",
            content=lines,
            headers={"content-type": "application/x-ndjson"},
        )
    assert resp.status_code == 202, resp.text
    assert [r["result"] for r in resp.json()["results"]] == ["created"] * 3
    assert len(resp.json()["d1Batches"]) == 1
    assert [r["result"] for r in again.json()["results"]] == ["existing"] * 3
    assert TEST_PAN not in resp.text


async def test_batch_limits(api: Api) -> None:
    path = "/v1/issuers/TESTISS001/card-order-batches"
    too_many = [sample_order(new_request_id("api-many")) for _ in range(api.settings.max_batch_orders + 1)]
    async with api.client() as http:
        many = await http.post(path, json=too_many)
        empty = await http.post(path, json=[])
        garbage = await http.post(path, content=b"[1, 2", headers={"content-type": "application/json"})
        unknown = await http.get(f"{path}/b1.not-a-batch")
    assert many.status_code == 413 and many.json()["type"].endswith("/too-many-orders")
    assert empty.status_code == 400 and garbage.status_code == 400
    assert unknown.status_code == 404
