"""Pull & change through the API: each action answers 202 with the change record, 409 with the
reason when the order's state forbids it, 404 for an unknown order, 400 for a bad address."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import new_request_id
from tests.contract.test_pull_and_change import NEW_ADDRESS, paced
from tests.issuer_api.conftest import CLIENT_ID, Api
from tests.issuer_api.test_orders import wait_outcome
from tests.support.orders import sample_order


async def ordered_and_acknowledged(api: Api, prefix: str, step_ms: int = 400) -> str:
    rid = new_request_id(prefix)
    card = f"pc-{rid}"
    await paced(api.stack, card, step_ms)
    async with api.client() as http:
        assert (await http.post(api.orders_path(), json=sample_order(rid, card_id=card))).status_code == 201
        for _ in range(150):
            view = (await http.get(f"{api.orders_path()}/{rid}")).json()
            if view["productionStatus"] is not None:
                return rid
            await asyncio.sleep(0.1)
    raise AssertionError("D1 never acknowledged the order")


async def test_cancel_answers_202_and_the_order_ends_canceled(api: Api) -> None:
    rid = await ordered_and_acknowledged(api, "api-cancel")
    async with api.client() as http:
        resp = await http.post(f"{api.orders_path()}/{rid}/cancel", json={"note": "customer asked to stop"})
    assert resp.status_code == 202, resp.text
    change = resp.json()
    assert change["type"] == "CANCEL" and change["status"] in ("SENT", "ACCEPTED")
    assert change["requestedBy"]["clientId"] == CLIENT_ID
    view = await wait_outcome(api, rid)
    assert view["outcome"] == "CANCELED"
    assert view["changes"][0]["note"] == "customer asked to stop"


@pytest.mark.parametrize(
    ("action", "body", "kind"),
    [
        ("accelerate", None, "ACCELERATE"),
        ("redirect", {"newDeliveryAddress": NEW_ADDRESS}, "REDIRECT"),
        ("accelerate-and-redirect", {"newDeliveryAddress": NEW_ADDRESS, "note": "moved"}, "ACCELERATE_AND_REDIRECT"),
    ],
)
async def test_change_actions_answer_202_with_the_record(api: Api, action: str, body: dict | None, kind: str) -> None:
    rid = await ordered_and_acknowledged(api, f"api-{action}")
    async with api.client() as http:
        resp = await http.post(f"{api.orders_path()}/{rid}/{action}", json=body)
    assert resp.status_code == 202, resp.text
    assert resp.json()["type"] == kind
    if "redirect" in action:
        assert resp.json()["redirectedTo"] == "Boston, US"
        assert "5 Harbour Rd" not in resp.text


async def test_a_finished_order_cannot_change(api: Api) -> None:
    rid = new_request_id("api-done")
    async with api.client() as http:
        assert (await http.post(api.orders_path(), json=sample_order(rid))).status_code == 201
    await wait_outcome(api, rid)
    async with api.client() as http:
        resp = await http.post(f"{api.orders_path()}/{rid}/cancel")
    assert resp.status_code == 409, resp.text
    assert resp.json()["type"].endswith("/change-refused") and resp.json()["detail"]


async def test_change_refusals_before_temporal(api: Api) -> None:
    rid = await ordered_and_acknowledged(api, "api-badchange", step_ms=2000)
    base = f"{api.orders_path()}/{rid}"
    async with api.client() as http:
        no_address = await http.post(f"{base}/redirect", json={})
        bad_address = await http.post(f"{base}/redirect", json={"newDeliveryAddress": {"city": "Boston"}})
        extra = await http.post(f"{base}/cancel", json={"note": "x", "why": "y"})
        unknown = await http.post(f"{api.orders_path()}/never-{new_request_id()}/accelerate")
    assert no_address.status_code == 400 and no_address.json()["errors"][0]["path"] == "$.newDeliveryAddress"
    assert bad_address.status_code == 400
    assert all(e["path"].startswith("$.newDeliveryAddress") for e in bad_address.json()["errors"])
    assert extra.status_code == 400 and extra.json()["errors"][0]["path"] == "$.why"
    assert unknown.status_code == 404
