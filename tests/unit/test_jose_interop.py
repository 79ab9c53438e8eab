"""Our JWE and JWS are standard, not only self-consistent: an independent JOSE
implementation (joserfc, not jwcrypto) reads them."""

from __future__ import annotations

import json
import time
from pathlib import Path

from joserfc import jwe as rfc_jwe
from joserfc import jwt as rfc_jwt
from joserfc.jwk import ECKey
from jwcrypto import jwk

from activities.token_provider import make_assertion
from contracts.card_order import OrderTiming
from d1.jwe import encrypt_for_d1
from d1.program import DEFAULT_PROGRAM_FILE
from starter.edge import KeyFile, OrderEdge
from tests.support.orders import sample_order


def test_encrypted_data_decrypts_with_an_independent_implementation() -> None:
    d1_key = jwk.JWK.generate(kty="EC", crv="P-256", kid="d1-enc-interop")
    plaintext = {"pan": "4111111111111111", "exp": "2906", "name": "JANE SAMPLE", "cvv2": "123"}
    compact = encrypt_for_d1(plaintext, jwk.JWK.from_json(d1_key.export_public()))

    segments = compact.split(".")
    assert len(segments) == 5 and segments[1] == ""  # ECDH-ES direct: no encrypted key
    private = ECKey.import_key(json.loads(d1_key.export_private()))
    obj = rfc_jwe.decrypt_compact(compact, private, algorithms=["ECDH-ES", "A256GCM"])
    assert obj.protected["alg"] == "ECDH-ES"
    assert obj.protected["enc"] == "A256GCM"
    assert obj.protected["kid"] == "d1-enc-interop"
    assert obj.protected["epk"]["crv"] == "P-256"
    assert json.loads(obj.plaintext) == plaintext


def test_token_assertion_verifies_with_an_independent_implementation() -> None:
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid="issuer-sig-interop")
    now = time.time()
    assertion = make_assertion(
        key,
        issuer_id="TESTISS001",
        kid="issuer-sig-interop",
        lifetime_s=600,
        audience="https://api.d1.thalescloud.io",
        now=now,
    )
    public = ECKey.import_key(json.loads(key.export_public()))
    token = rfc_jwt.decode(assertion, public, algorithms=["ES256"])
    assert token.header["alg"] == "ES256" and token.header["kid"] == "issuer-sig-interop"
    claims = token.claims
    assert claims["iss"] == claims["sub"] == "TESTISS001"
    assert claims["exp"] <= now + 900
    assert claims["aud"] == "https://api.d1.thalescloud.io"


def test_assertion_lifetime_is_capped_at_fifteen_minutes() -> None:
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid="k")
    now = 1_767_225_600.0
    assertion = make_assertion(key, issuer_id="TESTISS001", kid="k", lifetime_s=3600, audience=None, now=now)
    claims = rfc_jwt.decode(assertion, ECKey.import_key(json.loads(key.export_public())), algorithms=["ES256"]).claims
    assert claims["exp"] - claims["iat"] == 900


def test_the_jwe_the_starter_builds_decrypts_with_an_independent_implementation(tmp_path: Path) -> None:
    """End to end at the edge: the order's encryptedData, as the workflow input carries it."""
    d1_key = jwk.JWK.generate(kty="EC", crv="P-256", kid="d1-enc-edge")
    public = tmp_path / "d1-public.jwk"
    public.write_text(d1_key.export_public())
    edge = OrderEdge(program_file=DEFAULT_PROGRAM_FILE, encryption_key=KeyFile(public))
    order = sample_order("req-interop-1", trackData={"track2": ";4111111111111111=29061010000000000000?"})
    prepared = edge.prepare(order, timing=OrderTiming())
    assert prepared.input.submission is not None
    compact = prepared.input.submission.body["encryptedData"]
    private = ECKey.import_key(json.loads(d1_key.export_private()))
    obj = rfc_jwe.decrypt_compact(compact, private, algorithms=["ECDH-ES", "A256GCM"])
    assert obj.protected["kid"] == "d1-enc-edge"
    plain = json.loads(obj.plaintext)
    assert plain["pan"] == order["cardData"]["pan"] and plain["cvv2"] == order["cardData"]["cvv2"]
    assert plain["trackData"] == order["trackData"]
