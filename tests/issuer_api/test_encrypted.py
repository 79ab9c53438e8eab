"""Card data the issuer's HSM already encrypted for D1 (``encryptedData``), made here with an
independent JOSE library (joserfc): accepted when its header names D1's current key, ECDH-ES and
A256GCM (checked, never decrypted by the API); D1 (the emulator) decrypts it. Refused otherwise."""

from __future__ import annotations

import json
from typing import Any

import pytest
from joserfc import jwe
from joserfc.jwk import ECKey

from tests.conftest import new_request_id
from tests.issuer_api.conftest import Api
from tests.issuer_api.test_orders import wait_outcome
from tests.support.orders import TEST_PAN, sample_order

CARD = {"pan": TEST_PAN, "exp": "2906", "name": "JANE SAMPLE", "cvv2": "123"}


def d1_key(api: Api) -> ECKey:
    return ECKey.import_key(json.loads(api.stack.local.paths.d1_encryption_key.read_text()))


def issuer_jwe(api: Api, **header: Any) -> str:
    key = d1_key(api)
    protected = {"alg": "ECDH-ES", "enc": "A256GCM", "kid": key.kid, **header}
    algorithms = [protected["alg"], protected["enc"]]
    return jwe.encrypt_compact(protected, json.dumps(CARD).encode(), key, algorithms=algorithms)


def encrypted_order(token: str) -> dict[str, Any]:
    order = sample_order(new_request_id("api-jwe"))
    del order["cardData"]
    return {**order, "encryptedData": token}


async def test_issuer_encrypted_order_is_accepted_and_delivered(api: Api) -> None:
    order = encrypted_order(issuer_jwe(api))
    async with api.client() as http:
        resp = await http.post(api.orders_path(), json=order)
        assert resp.status_code == 201, resp.text
        assert resp.json()["maskedPan"] is None  # the API never saw the PAN
        again = await http.post(api.orders_path(), json={**order, "encryptedData": issuer_jwe(api)})
    assert again.status_code == 200, "a new encryption of the same order is a retry"
    view = await wait_outcome(api, order["issuerRequestId"])
    assert view["outcome"] == "DELIVERED"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"kid": "d1-key-retired"}, "the JWE header's kid must name D1's current key"),
        ({"alg": "ECDH-ES+A256KW"}, "the JWE header's alg must be ECDH-ES"),
        ({"enc": "A128GCM"}, "the JWE header's enc must be A256GCM"),
    ],
)
async def test_a_jwe_for_another_key_or_algorithm_is_refused(api: Api, header: dict, reason: str) -> None:
    async with api.client() as http:
        resp = await http.post(api.orders_path(), json=encrypted_order(issuer_jwe(api, **header)))
    assert resp.status_code == 400
    details = [e["detail"] for e in resp.json()["errors"] if e["path"] == "$.encryptedData"]
    assert details and details[0].startswith(reason)


@pytest.mark.parametrize("token", ["not-a-jwe", "a.b.c", "e30.e30.e30.e30.e30", 42])
async def test_what_is_not_a_compact_jwe_is_refused(api: Api, token: Any) -> None:
    async with api.client() as http:
        resp = await http.post(api.orders_path(), json=encrypted_order(token))
    assert resp.status_code == 400
    assert [e["path"] for e in resp.json()["errors"]][:1] == ["$.encryptedData"]


async def test_clear_and_encrypted_card_data_together_are_refused(api: Api) -> None:
    order = {**encrypted_order(issuer_jwe(api)), "cardData": CARD}
    async with api.client() as http:
        resp = await http.post(api.orders_path(), json=order)
    assert resp.status_code == 400
    assert {"path": "$.cardData", "detail": "must be absent when encryptedData is given"} in resp.json()["errors"]
    assert TEST_PAN not in resp.text
