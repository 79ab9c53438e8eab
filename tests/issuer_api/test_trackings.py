"""The tracking hub through the API: ask for a tracking, ask again, read it."""

from __future__ import annotations

from tests.conftest import new_request_id
from tests.issuer_api.conftest import Api


async def test_tracking_asked_twice_and_read(api: Api) -> None:
    card = f"trk-{new_request_id()}"
    body = {"cardId": card, "trackingType": "SHIPMENT", "shipment": {"carrier": "dhl", "trackingNumber": "JD0001"}}
    async with api.client() as http:
        first = await http.post("/v1/issuers/TESTISS001/card-trackings", json=body)
        second = await http.post("/v1/issuers/TESTISS001/card-trackings", json=body)
        read = await http.get(first.headers["location"])
        bad = await http.post("/v1/issuers/TESTISS001/card-trackings", json={"cardId": card, "trackingType": "X"})
        unknown = await http.get(f"/v1/issuers/TESTISS001/card-trackings/none-{card}/RETURN")
    assert first.status_code == 201, first.text
    assert second.status_code == 200 and second.json()["id"] == first.json()["id"]
    assert read.status_code == 200 and read.json()["trackingType"] == "SHIPMENT"
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "$.trackingType"
    assert unknown.status_code == 404
