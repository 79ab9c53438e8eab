"""The service sheds load and says when Temporal is away: 429 with ``Retry-After`` when requests
wait too long for a slot toward Temporal; 503 with ``Retry-After`` (and ``ready`` 503) when
Temporal does not answer; 503 when a request outlives its deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client

from issuer_api.app import create_app
from issuer_api.tls import server_options
from settings import IssuerApiSettings
from stack.servers import free_port, serve, server_config
from starter.api import CardOrders
from tests.conftest import ISSUER_ID, new_request_id
from tests.issuer_api.conftest import Api, api_settings
from tests.support.orders import sample_order


@asynccontextmanager
async def another_api(api: Api, orders: CardOrders, **values: Any) -> AsyncIterator[str]:
    """The same API (same certificates, same tokens) with other limits, or before another Temporal."""
    jwks = api.settings.oauth_jwks_file
    assert jwks is not None
    settings: IssuerApiSettings = api_settings(api.pki, jwks, **values)
    async with serve(create_app(orders, settings), port=0, host="127.0.0.1", **server_options(settings)) as url:
        yield url


async def test_requests_beyond_the_concurrency_toward_temporal_are_shed_with_429(api: Api) -> None:
    async with another_api(api, api.stack.orders, temporal_concurrency=1, shed_after_s=0.0) as url:
        async with api.client() as http:
            answers = await asyncio.gather(*(http.get(f"{url}{api.orders_path()}") for _ in range(30)))
    codes = {a.status_code for a in answers}
    assert codes <= {200, 429} and 429 in codes and 200 in codes, codes
    shed = next(a for a in answers if a.status_code == 429)
    assert shed.headers["retry-after"] == "1" and shed.headers["content-type"] == "application/problem+json"


async def test_temporal_unreachable_is_503(api: Api) -> None:
    client = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    orders = CardOrders(client, task_queue="nowhere", timing=api.stack.orders.timing, edge=api.stack.orders.edge)
    async with another_api(api, orders) as url:
        async with api.client(timeout=60) as http:
            ready = await http.get(f"{url}/v1/health/ready")
            live = await http.get(f"{url}/v1/health/live")
            order = await http.post(f"{url}{api.orders_path()}", json=sample_order(new_request_id("api-away")))
            read = await http.get(f"{url}{api.orders_path()}/some-order")
    assert live.status_code == 200
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    for resp in (order, read):
        assert resp.status_code == 503, resp.text
        assert resp.headers["retry-after"] and resp.json()["type"].endswith("/unavailable")


async def test_a_request_past_its_deadline_is_503(api: Api) -> None:
    async with another_api(api, api.stack.orders, request_timeout_s=0.001) as url:
        async with api.client() as http:
            resp = await http.get(f"{url}{api.orders_path(ISSUER_ID)}")
    assert resp.status_code == 503 and resp.headers["retry-after"]


def test_idle_connections_of_issuer_systems_outlive_a_lull() -> None:
    # The receiver's server configuration (stack/servers.py): uvicorn's own 5 s keep-alive made a
    # caller that paused re-handshake mutual TLS inside its next call.
    settings = IssuerApiSettings(allow_plaintext=True)
    config = server_config(object(), settings, server_options(settings))
    assert config.timeout_keep_alive >= 60 and config.access_log is False and config.log_config is None
    tuned = IssuerApiSettings(allow_plaintext=True, keep_alive_s=300)
    assert server_config(object(), tuned, {}).timeout_keep_alive == 300
