"""What a webhook cannot be made to do on the real stack: verify after tampering or replay,
reach a private network, or stop verifying during a secret rotation (docs/events.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from events.api import WebhookEndpoints
from events.endpoints import EndpointRefused
from events.signing import signed_headers
from settings import EventsSettings
from tests.conftest import ISSUER_ID, TASK_QUEUE, Stack, new_request_id
from tests.events.conftest import Consumer, endpoints_of, registered
from tests.support.orders import sample_order

pytestmark = pytest.mark.asyncio


async def deliver_one_order(stack: Stack, consumer: Consumer) -> str:
    rid = new_request_id("sig")
    order = sample_order(rid)
    await stack.orders.submit(order)
    await stack.orders.wait(ISSUER_ID, rid)
    card = order["cardId"]
    await consumer.wait_for(lambda: "order.delivered" in [e["type"] for e in consumer.of_card(card)])
    return card


async def test_a_tampered_or_replayed_delivery_fails_verification(stack: Stack) -> None:
    consumer = Consumer()
    async with registered(stack, consumer):
        card = await deliver_one_order(stack, consumer)
    secret = consumer.secrets[0]
    real = next(d for d in consumer.deliveries if d.event["card_id"] == card)
    Webhook(secret).verify(real.body, real.headers)  # the genuine delivery verifies
    tampered = json.loads(real.body)
    tampered["data"]["production_status"] = "CARD_PROD_CANCELED"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(json.dumps(tampered, separators=(",", ":")), real.headers)
    with pytest.raises(WebhookVerificationError):  # the same body under another event id
        Webhook(secret).verify(real.body, {**real.headers, "webhook-id": "evt_other"})
    # A replay: the body and a signature that was genuine ten minutes ago.
    old = signed_headers(real.event["id"], real.body.decode(), [secret], now=datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(real.body, old)
    with pytest.raises(WebhookVerificationError):  # a fresh timestamp does not fit the old signature
        Webhook(secret).verify(real.body, {**old, "webhook-timestamp": real.headers["webhook-timestamp"]})


@pytest.mark.parametrize(
    "url",
    [
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata
        "https://[fd00::1]/hook",
        "https://127.0.0.1/hook",  # loopback outside development
        "http://example.com/hook",  # not HTTPS
        "https://user:pw@example.com/hook",
        "https://localhost/hook",
    ],
)
async def test_a_private_or_plain_url_is_refused_at_registration(stack: Stack, url: str) -> None:
    production = WebhookEndpoints(stack.client, TASK_QUEUE, EventsSettings())
    with pytest.raises(EndpointRefused):
        await production.create(ISSUER_ID, url, ["*"])
    assert all(e.url != url for e in await production.list(ISSUER_ID))


async def test_an_operator_allowed_network_is_accepted(stack: Stack) -> None:
    allowed = WebhookEndpoints(stack.client, TASK_QUEUE, EventsSettings(allowed_networks=["10.20.0.0/16"]))
    created = await allowed.create(ISSUER_ID, "https://10.20.1.2/hook", ["order.delivered"])
    await allowed.disable(ISSUER_ID, created.endpoint.endpoint_id)


async def test_secret_rotation_keeps_deliveries_verifiable(stack: Stack) -> None:
    old_only = Consumer()
    async with registered(stack, old_only) as reg:
        await deliver_one_order(stack, old_only)
        rotated = await endpoints_of(stack).rotate_secret(ISSUER_ID, reg.endpoint_id)
        new_secret = rotated.secret
        assert new_secret != old_only.secrets[0] and rotated.endpoint.secrets == 2
        card = await deliver_one_order(stack, old_only)  # the receiver has not switched yet
        after = [d for d in old_only.deliveries if d.event["card_id"] == card]
        for d in after:  # both secrets sign during the grace period
            assert len(d.headers["webhook-signature"].split(" ")) == 2
            Webhook(new_secret).verify(d.body, d.headers)
            Webhook(old_only.secrets[0]).verify(d.body, d.headers)
        view = next(e for e in await endpoints_of(stack).list(ISSUER_ID) if e.endpoint_id == reg.endpoint_id)
        assert "secret" not in view.model_dump()  # never listed
