"""SSO for the codec server: the OIDC access token the Temporal UI forwards, over real HTTP,
against a local issuer stand-in (tests/security/oidc_issuer.py); no network."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from google.protobuf import json_format
from jwcrypto import jwk
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from security import oidc
from security.codec import AesGcmCodec, load_codec
from security.codec_auth import CodecAuth, CodecAuthConfigError
from security.codec_server import create_app
from security.oidc import JwksSource, OidcVerifier, TokenRejected, roles_of
from settings import CodecServerSettings
from stack.servers import serve
from tests.security.oidc_issuer import AUDIENCE, ISSUER, PII_ROLE, OidcIssuer
from tests.security.support import LEAK_PAN, find_leaks, leak_card_data, leak_track_data
from tests.support.orders import sample_order
from tests.support.validation import validate_order

READ_ROLE = CodecServerSettings.model_fields["oidc_read_role"].default

UI = "http://localhost:8233"
MASKED_PAN = LEAK_PAN[:4] + "********" + LEAK_PAN[-4:]


@pytest.fixture(scope="module")
def issuer() -> OidcIssuer:
    return OidcIssuer()


@pytest.fixture
def codec(codec_keys_file: Path) -> AesGcmCodec:
    return load_codec(codec_keys_file)


def _verifier(issuer: OidcIssuer, tmp: Path, **kw: Any) -> OidcVerifier:
    jwks = JwksSource(file=issuer.write_jwks(tmp / "jwks.json"))
    return OidcVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, **kw)


@pytest_asyncio.fixture
async def codec_url(issuer: OidcIssuer, codec: AesGcmCodec, tmp_path: Path) -> AsyncIterator[str]:
    auth = CodecAuth(oidc=_verifier(issuer, tmp_path), allowed_origins=[UI])
    async with serve(create_app(codec, auth=auth, cors_origins=[UI]), access_log=False) as url:
        yield url


async def _order_body(codec: AesGcmCodec) -> dict[str, Any]:
    order = validate_order(sample_order("req-oidc-1", cardData=leak_card_data(), trackData=leak_track_data()))
    sealed = await codec.encode(pydantic_data_converter.payload_converter.to_payloads([order]))
    return json_format.MessageToDict(Payloads(payloads=sealed))


async def _decode(url: str, codec: AesGcmCodec, token: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            f"{url}/decode",
            json=await _order_body(codec),
            headers={"authorization": f"Bearer {token}", "origin": UI, "x-namespace": "default", **headers},
        )


def _order(response: httpx.Response) -> dict[str, Any]:
    payload = json_format.ParseDict(response.json(), Payloads()).payloads[0]
    value: dict[str, Any] = json.loads(payload.data)
    return value


async def test_valid_token_decodes_with_card_data_and_pii_masked(
    codec_url: str, codec: AesGcmCodec, issuer: OidcIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    token = issuer.token(roles=["card-orders-read"])
    with caplog.at_level(logging.INFO, logger="security.codec_server"):
        response = await _decode(codec_url, codec, token)
    assert response.status_code == 200, response.text
    order = _order(response)
    assert order["cardData"]["pan"] == MASKED_PAN
    assert order["cardData"]["cvv2"] == order["cardData"]["exp"] == "***"
    assert order["shipment"]["deliveryAddress"]["line1"] == "***"  # no PII role: masked
    assert order["cardId"] == "card-req-oidc-1"
    assert find_leaks("decoded", [response.text]) == []
    assert response.headers["access-control-allow-origin"] == UI
    lines = [r.getMessage() for r in caplog.records if r.name == "security.codec_server"]
    assert any("operator-7f3a (oidc)" in line and "PII masked" in line for line in lines), lines
    assert all(token not in line and token.split(".")[2] not in line for line in caplog.messages)


@pytest.mark.parametrize(
    "roles",
    [["card-orders-read", PII_ROLE], f"card-orders-read {PII_ROLE}"],
    ids=["list claim", "space-separated claim"],
)
async def test_the_pii_role_shows_names_and_addresses_never_card_data(
    codec_url: str, codec: AesGcmCodec, issuer: OidcIssuer, roles: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="security.codec_server"):
        response = await _decode(codec_url, codec, issuer.token(issuer.rsa, roles=roles))
    assert response.status_code == 200, response.text
    order = _order(response)
    assert order["shipment"]["deliveryAddress"]["line1"] == "10 Main St"
    assert order["cardData"]["pan"] == MASKED_PAN and order["cardData"]["name"] == "***"
    assert find_leaks("decoded with the PII role", [response.text]) == []
    assert any("PII shown" in m for m in caplog.messages)


async def test_mask_pii_overrides_the_role(codec: AesGcmCodec, issuer: OidcIssuer, tmp_path: Path) -> None:
    auth = CodecAuth(oidc=_verifier(issuer, tmp_path), mask_pii=True)
    async with serve(create_app(codec, auth=auth, cors_origins=[UI]), access_log=False) as url:
        response = await _decode(url, codec, issuer.token(roles=[READ_ROLE, PII_ROLE]))
    assert response.status_code == 200
    assert _order(response)["shipment"]["deliveryAddress"]["line1"] == "***"


async def test_a_configured_roles_claim_and_pii_role(codec: AesGcmCodec, issuer: OidcIssuer, tmp_path: Path) -> None:
    verifier = _verifier(issuer, tmp_path, roles_claim="realm_access.roles")
    auth = CodecAuth(oidc=verifier, pii_role="pii-readers")
    async with serve(create_app(codec, auth=auth, cors_origins=[UI]), access_log=False) as url:
        shown = await _decode(
            url, codec, issuer.token(realm_access={"roles": [READ_ROLE, "pii-readers"]}, roles=[PII_ROLE])
        )
        # The PII role in the wrong claim shows nothing; the read role only there reads nothing.
        masked = await _decode(url, codec, issuer.token(realm_access={"roles": [READ_ROLE]}, roles=["pii-readers"]))
        unread = await _decode(url, codec, issuer.token(roles=[READ_ROLE, "pii-readers"]))
    assert _order(shown)["shipment"]["deliveryAddress"]["line1"] == "10 Main St"
    assert _order(masked)["shipment"]["deliveryAddress"]["line1"] == "***"
    assert unread.status_code == 403


@pytest.mark.parametrize("roles", [[], [PII_ROLE], ["card-orders-reader"], "card-orders-read-only"])
async def test_a_signed_in_user_without_the_read_role_gets_nothing(
    codec_url: str, codec: AesGcmCodec, issuer: OidcIssuer, roles: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="security.codec_server"):
        response = await _decode(codec_url, codec, issuer.token(roles=roles))
    assert response.status_code == 403, response.text
    assert "payloads" not in response.json() and find_leaks("403 body", [response.text]) == []
    assert any("no read role" in m and "operator-7f3a (oidc)" in m for m in caplog.messages), caplog.messages


async def test_encode_is_refused_even_with_every_role(codec_url: str, codec: AesGcmCodec, issuer: OidcIssuer) -> None:
    token = issuer.token(roles=[READ_ROLE, PII_ROLE])
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{codec_url}/encode",
            json=json_format.MessageToDict(
                Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=b"{}")])
            ),
            headers={"authorization": f"Bearer {token}", "origin": UI},
        )
    assert response.status_code == 404 and "only decodes" in response.text
    assert "binary/encrypted" not in response.text and "payloads" not in response.json()


def test_roles_claim_shapes() -> None:
    assert roles_of({"roles": ["a", "b", 3]}, "roles") == {"a", "b"}
    assert roles_of({"scope": "openid a  b"}, "scope") == {"openid", "a", "b"}
    assert roles_of({"https://bank.test/roles": ["a"]}, "https://bank.test/roles") == {"a"}
    assert roles_of({"realm_access": {"roles": ["a"]}}, "realm_access.roles") == {"a"}
    assert roles_of({"roles": {"a": True}}, "roles") == frozenset()
    assert roles_of({}, "roles") == frozenset()


def _forged(issuer: OidcIssuer) -> dict[str, str]:
    now = int(time.time())
    impostor = jwk.JWK.generate(kty="EC", crv="P-256", kid=issuer.ec["kid"])  # same kid, other key
    good = issuer.token()
    header, payload, _ = good.split(".")
    other_sig = issuer.token(roles=[PII_ROLE]).split(".")[2]
    return {
        "expired": issuer.token(exp=now - 120, iat=now - 600, nbf=now - 600),
        "not yet valid": issuer.token(nbf=now + 120, iat=now),
        "issued in the future": issuer.token(iat=now + 120, nbf=None),
        "no exp": issuer.token(exp=None),
        "no sub": issuer.token(sub=None),
        "wrong audience": issuer.token(aud="another-app"),
        "wrong audience list": issuer.token(aud=["another-app", "yet-another"]),
        "wrong issuer": issuer.token(iss="https://evil.test/realms/operators"),
        "unknown kid": issuer.token(jwk.JWK.generate(kty="EC", crv="P-256", kid="sso-ec-unknown")),
        "no kid": issuer.token(kid=""),
        "bad signature": issuer.token(impostor),
        "signature of other claims": f"{header}.{payload}.{other_sig}",
        "alg none": issuer.unsigned(),
        "HS256 with the public key": issuer.hs256_with_public_key(),
        "RS256 header on the EC key": issuer.token(issuer.rsa, kid=issuer.ec["kid"]),
        "not a JWT": "a.b.c",
    }


# Why each is refused, as the codec server logs it: each must fail for its own reason.
REASONS = {
    "expired": "expired",
    "not yet valid": "not yet valid",
    "issued in the future": "issued in the future",
    "no exp": "no 'exp' claim",
    "no sub": "no 'sub' claim",
    "wrong audience": "wrong audience",
    "wrong audience list": "wrong audience",
    "wrong issuer": "wrong issuer",
    "unknown kid": "unknown kid",
    "no kid": "no 'kid'",
    "bad signature": "bad signature",
    "signature of other claims": "bad signature",
    "alg none": "algorithm 'none' not allowed",
    "HS256 with the public key": "algorithm 'HS256' not allowed",
    "RS256 header on the EC key": "(kty EC) cannot verify RS256",
    "not a JWT": "not a compact JWS",
}
FORGERIES = list(_forged(OidcIssuer()).keys())
assert set(FORGERIES) == set(REASONS)


@pytest.mark.parametrize("case", FORGERIES)
async def test_bad_tokens_are_refused(
    codec_url: str, codec: AesGcmCodec, issuer: OidcIssuer, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = _forged(issuer)[case]
    with caplog.at_level(logging.INFO):
        response = await _decode(codec_url, codec, token)
    assert response.status_code == 401, (case, response.text)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert find_leaks(case, [response.text]) == []
    refusals = [m for m in caplog.messages if "refused" in m]
    assert any(REASONS[case] in m for m in refusals), refusals
    assert all(token not in m for m in caplog.messages)


async def test_leeway_tolerates_small_clock_skew(issuer: OidcIssuer, tmp_path: Path) -> None:
    now = time.time()
    verifier = _verifier(issuer, tmp_path, leeway_s=30)
    token = issuer.token(exp=int(now) - 10, nbf=int(now) + 10, iat=int(now) + 10)
    assert (await verifier.verify(token, now=now)).subject == "operator-7f3a"
    with pytest.raises(TokenRejected, match="expired"):
        await _verifier(issuer, tmp_path, leeway_s=0).verify(token, now=now)


async def test_audience_may_be_a_list(issuer: OidcIssuer, tmp_path: Path) -> None:
    verified = await _verifier(issuer, tmp_path).verify(issuer.token(aud=["account", AUDIENCE], roles=["x"]))
    assert verified.roles == {"x"}


def _jwks_server(served: dict[str, Any]) -> Starlette:
    async def jwks(_: Request) -> Response:
        served["fetches"] += 1
        return JSONResponse(served["document"])

    return Starlette(routes=[Route("/certs", jwks)])


async def test_jwks_url_is_cached_and_refetched_on_unknown_kid(issuer: OidcIssuer) -> None:
    first, rotated = issuer.ec, jwk.JWK.generate(kty="EC", crv="P-256", kid="sso-ec-2")
    served: dict[str, Any] = {"fetches": 0, "document": issuer.jwks([first])}
    async with serve(_jwks_server(served), access_log=False) as url:
        verifier = OidcVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=JwksSource(url=f"{url}/certs"))
        assert (await verifier.verify(issuer.token(first))).subject == "operator-7f3a"
        await verifier.verify(issuer.token(first))
        assert served["fetches"] == 1  # cached
        served["document"] = issuer.jwks([first, rotated])  # the issuer rotates its keys
        assert (await verifier.verify(issuer.token(rotated))).subject == "operator-7f3a"
        assert served["fetches"] == 2  # unknown kid: fetched again
        # Made-up kids do not make it fetch again right away (at most once per JWKS_MIN_REFETCH_S).
        stranger = jwk.JWK.generate(kty="EC", crv="P-256", kid="made-up")
        for _ in range(3):
            with pytest.raises(TokenRejected, match="unknown kid"):
                await verifier.verify(issuer.token(stranger))
        assert served["fetches"] == 2


async def test_jwks_url_failures_keep_the_file_keys_and_are_bounded(
    issuer: OidcIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oidc, "MAX_JWKS_BYTES", 200)
    served: dict[str, Any] = {"fetches": 0, "document": issuer.jwks()}  # > 200 bytes: refused
    async with serve(_jwks_server(served), access_log=False) as url:
        source = JwksSource(file=issuer.write_jwks(tmp_path / "jwks.json"), url=f"{url}/certs")
        verifier = OidcVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=source)
        assert (await verifier.verify(issuer.token())).subject == "operator-7f3a"
        assert served["fetches"] == 1
    with pytest.raises(ValueError, match="https://"):
        JwksSource(url="http://sso.bank.test/certs")


def test_jwks_file_keeps_public_signature_keys_only(issuer: OidcIssuer, tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    secret = jwk.JWK.generate(kty="oct", size=256, kid="hmac")
    enc = jwk.JWK.generate(kty="EC", crv="P-256", kid="enc", use="enc")
    keys = [json.loads(issuer.ec.export_private()), secret.export(as_dict=True), enc.export_public(as_dict=True)]
    path.write_text(json.dumps({"keys": keys}))
    loaded = oidc._signing_keys(path.read_text(), str(path))
    assert [k["kid"] for k in loaded["keys"]] == [issuer.ec["kid"]]
    assert not next(iter(loaded["keys"])).has_private
    path.write_text("[]")
    with pytest.raises(ValueError, match="not a JWKS"):
        JwksSource(file=path)


def test_settings_must_configure_a_way_in(tmp_path: Path, issuer: OidcIssuer) -> None:
    with pytest.raises(CodecAuthConfigError, match="no way to authenticate"):
        CodecAuth.from_settings(CodecServerSettings(_env_file=None))
    with pytest.raises(CodecAuthConfigError, match="CODEC_SERVER_OIDC_AUDIENCE"):
        CodecAuth.from_settings(CodecServerSettings(oidc_issuer=ISSUER))
    with pytest.raises(CodecAuthConfigError, match="JWKS"):
        CodecAuth.from_settings(CodecServerSettings(oidc_issuer=ISSUER, oidc_audience=AUDIENCE))
    auth = CodecAuth.from_settings(
        CodecServerSettings(
            oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_file=issuer.write_jwks(tmp_path / "j.json")
        )
    )
    assert auth.methods == ["oidc"]
