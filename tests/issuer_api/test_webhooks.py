"""Webhook endpoints and the event feed through the API, on the real stack (issuer_api/webhooks.py):
an endpoint registered over HTTP receives verified deliveries of an order's events, the feed
returns them with working cursors, the order lists what it sent, a secret is shown once, and
another issuer sees nothing."""

from __future__ import annotations

import logging

import pytest

from contracts.card_order import Outcome
from issuer_api.auth import READ, WRITE
from stack.servers import free_port
from tests.conftest import ISSUER_ID, new_request_id
from tests.events.conftest import Consumer, serving
from tests.issuer_api.conftest import OTHER_ISSUER, Api
from tests.support.orders import sample_order

ENDPOINTS = f"/v1/issuers/{ISSUER_ID}/webhook-endpoints"
FEED = f"/v1/issuers/{ISSUER_ID}/events"


async def test_an_endpoint_gets_an_orders_events_and_the_feed_agrees(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    consumer = Consumer()
    async with serving(consumer, free_port()) as url, api.client() as http:
        created = await http.post(ENDPOINTS, json={"url": url, "eventTypes": ["*"], "description": "api test"})
        assert created.status_code == 201, created.text
        body = created.json()
        secret, endpoint = body["secret"], body["endpoint"]
        assert secret.startswith("whsec_") and created.headers["location"] == endpoint["links"]["self"]
        consumer.secrets.append(secret)
        endpoint_path = endpoint["links"]["self"]
        try:
            rid = new_request_id("api-hooks")
            order = sample_order(rid)
            assert (await http.post(api.orders_path(), json=order)).status_code == 201
            view = await api.stack.orders.wait(ISSUER_ID, rid)
            assert view.state.outcome == Outcome.DELIVERED
            card = order["cardId"]
            await consumer.wait_for(
                lambda: "order.delivered" in [e["type"] for e in consumer.of_card(card)], what="order.delivered"
            )
            delivered = consumer.of_card(card)  # each verified with the standardwebhooks library

            # The order lists the events it sent: the ones the endpoint received, in the same order.
            sent = await http.get(f"{api.orders_path()}/{rid}/events")
            assert sent.status_code == 200, sent.text
            assert [e["id"] for e in sent.json()["events"]] == [e["id"] for e in delivered]
            assert (await http.get(f"{api.orders_path()}/nope-{rid}/events")).status_code == 404

            # The feed: the same bodies in the same order, two at a time with the cursor.
            from_feed: list[dict] = []
            cursor = str(delivered[0]["sequence"] - 1)
            for _ in range(200):
                page = await http.get(FEED, params={"after": cursor, "limit": 2})
                assert page.status_code == 200, page.text
                answer = page.json()
                assert len(answer["events"]) <= 2
                from_feed += [e for e in answer["events"] if e["card_id"] == card]
                cursor = answer["nextCursor"]
                if not answer["hasMore"] or int(cursor) >= delivered[-1]["sequence"]:
                    break
            assert from_feed == delivered
            only = await http.get(FEED, params={"after": delivered[0]["sequence"] - 1, "types": "order.delivered"})
            assert {e["type"] for e in only.json()["events"]} == {"order.delivered"}
            assert (await http.get(FEED, params={"types": "order.nope"})).status_code == 400
            assert (await http.get(FEED, params={"after": "x1"})).status_code == 400

            # Listed without its secret; the secret is in no log line.
            listed = await http.get(ENDPOINTS)
            assert listed.status_code == 200 and endpoint["endpointId"] in listed.text
            assert secret not in listed.text and "whsec_" not in listed.text
            one = await http.get(endpoint_path)
            assert one.status_code == 200 and "whsec_" not in one.text

            # Redelivered on request: the same event, verified again.
            last = delivered[-1]
            before = len(consumer.deliveries)
            again = await http.post(f"{FEED}/{last['id']}/redeliver", json={"endpointId": endpoint["endpointId"]})
            assert again.status_code == 200, again.text
            assert again.json()["deliveredTo"] == [endpoint["endpointId"]]
            assert consumer.deliveries[before:][0].event["id"] == last["id"]
            unknown = await http.post(f"{FEED}/evt_{'a' * 32}/redeliver")
            assert unknown.status_code == 404

            # Rotation: a new secret, shown once; both sign during the grace period.
            rotated = await http.post(f"{endpoint_path}/rotate-secret")
            assert rotated.status_code == 200, rotated.text
            new_secret = rotated.json()["secret"]
            assert new_secret != secret and rotated.json()["endpoint"]["secrets"] == 2
            patched = await http.patch(endpoint_path, json={"eventTypes": ["order.delivered"]})
            assert patched.status_code == 200 and patched.json()["eventTypes"] == ["order.delivered"]
            refused = await http.patch(endpoint_path, json={"url": "https://10.0.0.1/hook"})
            assert refused.status_code == 400 and refused.json()["errors"][0]["path"] == "$.url"
            assert "whsec_" not in caplog.text
        finally:
            disabled = await http.post(f"{endpoint_path}/disable")
            assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    async with api.client() as http:
        enabled_again = await http.post(f"{endpoint_path}/enable")
        await http.post(f"{endpoint_path}/disable")
    assert enabled_again.status_code == 200 and enabled_again.json()["status"] == "enabled"


async def test_another_issuer_sees_nothing(api: Api) -> None:
    async with api.client() as http:
        created = await http.post(ENDPOINTS, json={"url": "http://127.0.0.1:9/hook"})
        assert created.status_code == 201, created.text
        endpoint_id = created.json()["endpoint"]["endpointId"]
        try:
            async with api.client(OTHER_ISSUER) as other:
                # The test issuer's paths: not for this client.
                for answer in (
                    await other.get(ENDPOINTS),
                    await other.get(f"{ENDPOINTS}/{endpoint_id}"),
                    await other.post(f"{ENDPOINTS}/{endpoint_id}/disable"),
                    await other.get(FEED),
                ):
                    assert answer.status_code == 403, answer.text
                # Its own paths: none of the test issuer's endpoints or events.
                mine = f"/v1/issuers/{OTHER_ISSUER}"
                assert (await other.get(f"{mine}/webhook-endpoints/{endpoint_id}")).status_code == 404
                assert (await other.post(f"{mine}/webhook-endpoints/{endpoint_id}/rotate-secret")).status_code == 404
                listed = await other.get(f"{mine}/webhook-endpoints")
                assert listed.status_code == 200 and endpoint_id not in listed.text
                feed = await other.get(f"{mine}/events")
                assert feed.status_code == 200
                assert all(e["issuer_id"] == OTHER_ISSUER for e in feed.json()["events"])
        finally:
            await http.post(f"{ENDPOINTS}/{endpoint_id}/disable")


async def test_managing_endpoints_needs_the_webhooks_scope(api: Api) -> None:
    async with api.client(token=api.token(scope=f"{WRITE} {READ}")) as http:
        create = await http.post(ENDPOINTS, json={"url": "https://hooks.example/x"})
        listed = await http.get(ENDPOINTS)
        feed = await http.get(FEED)
    assert create.status_code == 403 and 'scope="card-orders:webhooks"' in create.headers["www-authenticate"]
    assert listed.status_code == 403
    assert feed.status_code == 200  # the feed is read with card-orders:read
