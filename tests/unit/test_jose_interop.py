"""Our JWE and JWS are standard, not only self-consistent: an independent JOSE
implementation (joserfc, not jwcrypto) reads them."""

from __future__ import annotations

import json
import time

from joserfc import jwe as rfc_jwe
from joserfc import jwt as rfc_jwt
from joserfc.jwk import ECKey
from jwcrypto import jwk

from activities.token_provider import make_assertion
from d1.jwe import encrypt_for_d1


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
        key, issuer_id="TESTISS001", kid="issuer-sig-interop", lifetime_s=600, audience="https://api.d1.thalescloud.io",
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
