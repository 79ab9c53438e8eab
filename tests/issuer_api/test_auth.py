"""Who may call the API: each failure answered as docs/issuer-api.md documents it. No client
certificate, an expired token, one for another audience or none at all: 401 with
``WWW-Authenticate``. A certificate of another issuer, a token without the scope: 403 with
``WWW-Authenticate``. Another issuer's order, seen from one's own issuer: 404."""

from __future__ import annotations

import time

import httpx
import pytest

from security.pki import CertPair, issue_certificate, load_ca, save_pair
from security.tls import client_ssl_context
from tests.conftest import ISSUER_ID, new_request_id
from tests.issuer_api.conftest import OTHER_ISSUER, Api
from tests.support.orders import sample_order


def challenge(resp: httpx.Response) -> str:
    return resp.headers.get("www-authenticate", "")


async def test_no_client_certificate_is_401(api: Api) -> None:
    async with api.client(issuer_id=None) as http:
        resp = await http.get(api.orders_path())
    assert resp.status_code == 401 and resp.headers["content-type"] == "application/problem+json"
    assert challenge(resp).startswith('Bearer realm="issuer-api"')


async def test_a_certificate_of_another_ca_fails_the_handshake(api: Api, tmp_path) -> None:
    from security.pki import ensure_local_pki

    stranger = ensure_local_pki(tmp_path / "stranger", [ISSUER_ID])
    pair = stranger.issuer_client(ISSUER_ID)
    context = client_ssl_context(ca_file=api.pki.ca_cert, cert_file=pair.cert, key_file=pair.key)
    async with httpx.AsyncClient(base_url=api.url, verify=context) as http:
        with pytest.raises(httpx.HTTPError):
            await http.get(api.orders_path(), headers={"authorization": f"Bearer {api.token()}"})


async def test_certificate_of_another_issuer_is_403(api: Api) -> None:
    async with api.client(issuer_id=OTHER_ISSUER) as http:
        read = await http.get(api.orders_path(ISSUER_ID))
        order = await http.post(api.orders_path(ISSUER_ID), json=sample_order(new_request_id("api-foreign")))
    for resp in (read, order):
        assert resp.status_code == 403, resp.text
        assert 'error="insufficient_scope"' in challenge(resp)


async def test_a_certificate_naming_no_issuer_is_403(api: Api, tmp_path) -> None:
    pair = save_pair(
        CertPair(tmp_path / "anon.crt", tmp_path / "anon.key"),
        *issue_certificate(load_ca(api.pki), "someone", server=False),
    )
    context = client_ssl_context(ca_file=api.pki.ca_cert, cert_file=pair.cert, key_file=pair.key)
    async with httpx.AsyncClient(base_url=api.url, verify=context) as http:
        resp = await http.get(api.orders_path(), headers={"authorization": f"Bearer {api.token()}"})
    assert resp.status_code == 403


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200, "nbf": int(time.time()) - 7200},
        {"aud": "another-api"},
        {"iss": "https://elsewhere.test/"},
    ],
    ids=["expired", "wrong-audience", "wrong-issuer"],
)
async def test_refused_tokens_are_401(api: Api, claims: dict) -> None:
    async with api.client(token=api.token(**claims)) as http:
        resp = await http.get(api.orders_path())
    assert resp.status_code == 401
    assert 'error="invalid_token"' in challenge(resp)


async def test_no_token_is_401(api: Api) -> None:
    async with api.client(bearer=False) as http:
        resp = await http.get(api.orders_path())
    assert resp.status_code == 401 and challenge(resp) == 'Bearer realm="issuer-api"'


@pytest.mark.parametrize(
    ("scope", "method", "suffix", "needed"),
    [
        ("card-orders:read", "POST", "", "card-orders:write"),
        ("card-orders:write", "GET", "", "card-orders:read"),
        ("card-orders:read card-orders:write", "POST", "/some-order/cancel", "card-orders:change"),
    ],
)
async def test_missing_scope_is_403(api: Api, scope: str, method: str, suffix: str, needed: str) -> None:
    async with api.client(token=api.token(scope=scope)) as http:
        resp = await http.request(method, api.orders_path() + suffix, json=sample_order(new_request_id("api-scope")))
    assert resp.status_code == 403
    assert f'scope="{needed}"' in challenge(resp)


async def test_token_bound_to_other_issuers_is_403(api: Api) -> None:
    async with api.client(token=api.token(issuer_ids=[OTHER_ISSUER])) as http:
        resp = await http.get(api.orders_path())
    assert resp.status_code == 403


async def test_another_issuers_order_is_not_found(api: Api) -> None:
    rid = new_request_id("api-mine")
    async with api.client() as http:
        assert (await http.post(api.orders_path(), json=sample_order(rid))).status_code == 201
    async with api.client(issuer_id=OTHER_ISSUER) as other:
        read = await other.get(f"{api.orders_path(OTHER_ISSUER)}/{rid}")
        timeline = await other.get(f"{api.orders_path(OTHER_ISSUER)}/{rid}/timeline")
        cancel = await other.post(f"{api.orders_path(OTHER_ISSUER)}/{rid}/cancel")
        listed = await other.get(api.orders_path(OTHER_ISSUER))
    assert (read.status_code, timeline.status_code, cancel.status_code) == (404, 404, 404)
    assert rid not in listed.text


async def test_health_needs_no_credential(api: Api) -> None:
    async with api.client(issuer_id=None, bearer=False) as http:
        live = await http.get("/v1/health/live")
        ready = await http.get("/v1/health/ready")
        document = await http.get("/openapi.json")
    assert live.json() == {"status": "ok"} and ready.status_code == 200
    assert document.json()["openapi"].startswith("3.1")
