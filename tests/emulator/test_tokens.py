"""Token endpoint: the documented JWT-bearer checks, over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from emulator_support import ISSUER_ID, ISSUER_KID, OTHER_ISSUER_ID, Emulator, make_assertion, make_key
from jwcrypto import jwk

from d1.paths import JWT_BEARER_GRANT

TOKEN_URL = "/authz/v1/oauth2/token"


async def test_token_happy_path_form_and_json(emu: Emulator) -> None:
    form = await emu.client.post(
        TOKEN_URL, data={"grant_type": JWT_BEARER_GRANT, "assertion": make_assertion(emu.issuer_key)}
    )
    assert form.status_code == 200
    body = form.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "d1-api:physical-issuance"
    assert len(body["access_token"]) >= 32

    as_json = await emu.client.post(
        TOKEN_URL, json={"grant_type": JWT_BEARER_GRANT, "assertion": make_assertion(emu.issuer_key)}
    )
    assert as_json.status_code == 200
    assert as_json.json()["access_token"] != body["access_token"]

    stats = await emu.stats()
    assert stats["tokenRequests"] == 2
    assert stats["tokensIssued"] == 2


def _es384_assertion(kid: str) -> str:
    key = jwk.JWK.generate(kty="EC", crv="P-384", kid=kid)
    return make_assertion(key, alg="ES384")


def _hs256_assertion(kid: str) -> str:
    key = jwk.JWK.generate(kty="oct", size=256, kid=kid)
    return make_assertion(key, alg="HS256")


@pytest.mark.parametrize(
    ("case", "expected_code"),
    [
        ("alg ES384", "invalid_request"),
        ("alg HS256", "invalid_request"),
        ("unknown kid", "invalid_grant"),
        ("expired", "invalid_grant"),
        ("exp too far ahead", "invalid_grant"),
        ("iss != sub", "invalid_grant"),
        ("iss is another issuer", "invalid_grant"),
        ("signed by another key", "invalid_grant"),
        ("wrong grant_type", "invalid_request"),
        ("missing assertion", "invalid_request"),
        ("not a JWT", "invalid_request"),
    ],
)
async def test_token_refusals(emu: Emulator, case: str, expected_code: str) -> None:
    form: dict[str, Any] = {"grant_type": JWT_BEARER_GRANT}
    match case:
        case "alg ES384":
            form["assertion"] = _es384_assertion(ISSUER_KID)
        case "alg HS256":
            form["assertion"] = _hs256_assertion(ISSUER_KID)
        case "unknown kid":
            form["assertion"] = make_assertion(make_key("nobody-knows-me"))
        case "expired":
            form["assertion"] = make_assertion(emu.issuer_key, exp_in=-120)
        case "exp too far ahead":
            form["assertion"] = make_assertion(emu.issuer_key, exp_in=3600)
        case "iss != sub":
            form["assertion"] = make_assertion(emu.issuer_key, sub="SOMEONEELS")
        case "iss is another issuer":
            form["assertion"] = make_assertion(emu.issuer_key, OTHER_ISSUER_ID)
        case "signed by another key":
            form["assertion"] = make_assertion(make_key(ISSUER_KID))
        case "wrong grant_type":
            form["grant_type"] = "client_credentials"
            form["assertion"] = make_assertion(emu.issuer_key)
        case "missing assertion":
            pass
        case "not a JWT":
            form["assertion"] = "definitely.not-a.jwt"
    response = await emu.client.post(TOKEN_URL, data=form)
    assert response.status_code == 400
    body = response.json()
    assert body["errorCode"] == expected_code
    assert isinstance(body["error"], str) and body["error"]
    stats = await emu.stats()
    assert stats["tokenRequests"] == 1
    assert stats["tokensIssued"] == 0


async def test_key_without_issuer_id_accepts_any_ten_char_iss(emu: Emulator) -> None:
    loose = make_key("loose-key")
    path = emu.tmp_path / "issuer-keys.json"
    document = json.loads(path.read_text())
    document["keys"].append(loose.export_public(as_dict=True))
    path.write_text(json.dumps(document))  # picked up without a restart

    ok = await emu.client.post(
        TOKEN_URL, data={"grant_type": JWT_BEARER_GRANT, "assertion": make_assertion(loose, "ANYISSUER1")}
    )
    assert ok.status_code == 200
    short = await emu.client.post(
        TOKEN_URL, data={"grant_type": JWT_BEARER_GRANT, "assertion": make_assertion(loose, "SHORT")}
    )
    assert short.status_code == 400
    assert short.json()["errorCode"] == "invalid_grant"


async def test_token_is_bound_to_issuer(emu: Emulator) -> None:
    token = await emu.token(ISSUER_ID)
    other = await emu.token(OTHER_ISSUER_ID, emu.other_key)
    assert (await emu.order(token)).status_code == 202
    forbidden = await emu.order(other)
    assert forbidden.status_code == 403
    assert forbidden.json()["errorCode"] == "FORBIDDEN"
    assert (await emu.status(other)).status_code == 403
