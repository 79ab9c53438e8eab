"""A card's life through the API: replace a delivered card, the new order linked to it; renew it;
a re-shipment of a card that was not returned is refused; another issuer cannot touch it."""

from __future__ import annotations

import asyncio

from contracts import search_attributes as sa
from contracts.card_order import Outcome
from tests.conftest import new_request_id
from tests.issuer_api.conftest import OTHER_ISSUER, Api
from tests.support.orders import sample_order

NEW_CARD = {"pan": "4000000000000002", "exp": "3012"}


async def test_replace_and_renew_start_linked_orders_and_a_reshipment_needs_a_returned_card(api: Api) -> None:
    rid = new_request_id("api-life")
    old = f"card-{rid}"
    async with api.client() as http:
        created = await http.post(api.orders_path(), json=sample_order(rid, card_id=old))
        assert created.status_code == 201, created.text
        view = await asyncio.wait_for(api.stack.orders.wait("TESTISS001", rid), timeout=120)
        assert view.state.outcome == Outcome.DELIVERED
        base = f"/v1/issuers/TESTISS001/cards/{old}"
        new = f"card-{new_request_id('repl')}"
        body = {"reason": "STOLEN", "newCardId": new, "cardData": NEW_CARD}
        replaced = await http.post(f"{base}/replacement", json=body)
        again = await http.post(f"{base}/replacement", json=body)
        wrong = await http.post(f"{base}/replacement", json={**body, "reason": "BORED"})
        # The new card's order is still open: renewing it now is refused (program: openOrderOnReplace).
        renew_open = await http.post(
            f"/v1/issuers/TESTISS001/cards/{new}/renewal",
            json={"newCardId": f"card-{new_request_id('rn')}", "cardData": NEW_CARD},
        )
        reship = await http.post(
            f"{base}/reshipment",
            json={"newCardId": f"card-{new_request_id('rs')}", "cardData": NEW_CARD, "newDeliveryAddress": {}},
        )
    async with api.client(issuer_id=OTHER_ISSUER) as other:
        foreign = await other.post(f"{base}/replacement", json=body)
    assert replaced.status_code == 201, replaced.text
    assert replaced.json()["replacesCardId"] == old and replaced.json()["cardId"] == new
    assert again.status_code == 200 and again.json()["id"] == replaced.json()["id"]
    assert wrong.status_code == 400 and "BORED" not in wrong.text
    assert renew_open.status_code == 409, renew_open.text
    assert reship.status_code in (400, 409), reship.text  # delivered, not returned: nothing to re-ship
    assert foreign.status_code in (403, 404)
    assert "4000000000000002" not in replaced.text + again.text + wrong.text + reship.text + renew_open.text
    described = await api.stack.orders.client.get_workflow_handle(replaced.json()["id"]).describe()
    assert described.typed_search_attributes.get(sa.REPLACES_CARD_ID) == [old]
