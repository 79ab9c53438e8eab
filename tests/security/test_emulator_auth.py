"""The emulator, as D1, refuses what D1 refuses (docs/d1/auth.md §2-§4, §7; docs/d1/encryption.md §6) — over mTLS.

The plain-HTTP sandbox refusals are in tests/emulator; here the same checks run through
the mutual-TLS emulator, plus what only exists with mTLS: the client certificate's
identity is mapped to an issuerId, and a token request or a bearer token whose issuer
differs from the certificate's is refused.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from jwcrypto import jwk

from activities.d1_client import D1Unavailable
from d1.paths import JWT_BEARER_GRANT, order_path
from security.pki import CertPair
from tests.security.conftest import MtlsStack
from tests.security.support import ISSUER_ID, OTHER_ISSUER_ID, encrypt, make_assertion
from tests.support.orders import sample_order
from tests.support.validation import validate_order
from worker import d1_activities

CARD = {"pan": "4929731640582292", "exp": "3108", "cvv2": "837"}


async def _token_request(stack: MtlsStack, pair: CertPair | None, assertion: str) -> httpx.Response:
    async with stack.http(pair) as http:
        return await http.post(
            f"{stack.emulator_url}/authz/v1/oauth2/token", data={"grant_type": JWT_BEARER_GRANT, "assertion": assertion}
        )


async def _token(stack: MtlsStack, issuer: str = ISSUER_ID) -> str:
    key = stack.issuer_key if issuer == ISSUER_ID else stack.other_issuer_key
    response = await _token_request(stack, stack.pki.issuer_client(issuer), make_assertion(key, issuer))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _order_body(encrypted: str) -> dict[str, Any]:
    """A body the emulator accepts apart from ``encryptedData`` (built like the product builds it)."""
    return validate_order(sample_order("req-sec-0001")).d1_body(encrypted)


async def _order(
    stack: MtlsStack,
    pair: CertPair,
    token: str,
    body: dict[str, Any],
    issuer: str = ISSUER_ID,
    card: str = "card-sec-0001",
) -> httpx.Response:
    async with stack.http(pair) as http:
        return await http.post(
            f"{stack.emulator_url}/banking/v1{order_path(issuer, card)}",
            json=body,
            headers={"authorization": f"Bearer {token}"},
        )


async def test_issuer_certificate_and_matching_assertion_get_a_token(mtls_stack: MtlsStack) -> None:
    assert await _token(mtls_stack)
    assert await _token(mtls_stack, OTHER_ISSUER_ID)


async def test_no_client_certificate_fails_the_tls_handshake(mtls_stack: MtlsStack) -> None:
    with pytest.raises(httpx.TransportError):
        await _token_request(mtls_stack, None, make_assertion(mtls_stack.issuer_key))
    with pytest.raises(httpx.TransportError):
        await _token_request(
            mtls_stack, mtls_stack.rogue_pki.issuer_client(ISSUER_ID), make_assertion(mtls_stack.issuer_key)
        )


@pytest.mark.parametrize(
    ("label", "cert_of"),
    [("certificate of another issuer", "issuer:other"), ("a certificate naming no issuer", "notifier:self")],
)
async def test_token_request_whose_certificate_is_not_the_assertions_issuer_is_refused(
    mtls_stack: MtlsStack, label: str, cert_of: str
) -> None:
    pair = {
        "issuer:other": mtls_stack.pki.issuer_client(OTHER_ISSUER_ID),
        "notifier:self": mtls_stack.pki.notifier_client(ISSUER_ID),
    }[cert_of]
    response = await _token_request(mtls_stack, pair, make_assertion(mtls_stack.issuer_key, ISSUER_ID))
    assert response.status_code == 400, label
    assert response.json() == {
        "errorCode": "invalid_grant",
        "error": "assertion: iss is not the issuer of the TLS client certificate",
    }


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("forged (signed by another key under the registered kid)", 400, "invalid_grant"),
        ("expired", 400, "invalid_grant"),
        ("unknown kid", 400, "invalid_grant"),
        ("alg ES384", 400, "invalid_request"),
        ("alg HS256", 400, "invalid_request"),
        ("issued to another issuer (iss of another tenant)", 400, "invalid_grant"),
    ],
)
async def test_bad_assertions_are_refused(mtls_stack: MtlsStack, case: str, status: int, code: str) -> None:
    kid = mtls_stack.issuer_key["kid"]
    assertion = {
        "forged (signed by another key under the registered kid)": lambda: make_assertion(
            jwk.JWK.generate(kty="EC", crv="P-256", kid=kid)
        ),
        "expired": lambda: make_assertion(mtls_stack.issuer_key, exp_in=-120),
        "unknown kid": lambda: make_assertion(mtls_stack.issuer_key, kid="no-such-kid"),
        "alg ES384": lambda: make_assertion(jwk.JWK.generate(kty="EC", crv="P-384", kid=kid), alg="ES384"),
        "alg HS256": lambda: make_assertion(jwk.JWK.generate(kty="oct", size=256, kid=kid), alg="HS256"),
        "issued to another issuer (iss of another tenant)": lambda: make_assertion(
            mtls_stack.issuer_key, OTHER_ISSUER_ID
        ),
    }[case]()
    response = await _token_request(mtls_stack, mtls_stack.pki.issuer_client(ISSUER_ID), assertion)
    assert response.status_code == status, case
    assert response.json()["errorCode"] == code


async def test_token_of_one_issuer_is_refused_over_another_issuers_certificate(mtls_stack: MtlsStack) -> None:
    token = await _token(mtls_stack, ISSUER_ID)
    public = jwk.JWK(**mtls_stack.emulator.encryption_keys.public_jwk)
    body = _order_body(encrypt(CARD, public))
    # The other issuer's connection, even on the token owner's own path.
    response = await _order(mtls_stack, mtls_stack.pki.issuer_client(OTHER_ISSUER_ID), token, body)
    assert response.status_code == 403
    assert response.json()["errorCode"] == "FORBIDDEN"
    # And the other issuer's own token on the first issuer's path.
    other_token = await _token(mtls_stack, OTHER_ISSUER_ID)
    response = await _order(mtls_stack, mtls_stack.pki.issuer_client(OTHER_ISSUER_ID), other_token, body)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unknown kid", "encryptedData: unknown kid"),
        ("alg ECDH-ES+A256KW", "encryptedData: alg must be ECDH-ES and enc A256GCM"),
        ("enc A128GCM", "encryptedData: alg must be ECDH-ES and enc A256GCM"),
        ("tag tampered", "encryptedData: decryption failed"),
        ("for another key (same kid)", "encryptedData: decryption failed"),
    ],
)
async def test_bad_jwe_is_refused(mtls_stack: MtlsStack, case: str, reason: str) -> None:
    public = jwk.JWK(**mtls_stack.emulator.encryption_keys.public_jwk)
    stranger = jwk.JWK.generate(kty="EC", crv="P-256", kid=public["kid"])
    if case == "unknown kid":
        compact = encrypt(CARD, public, kid="someone-elses-key")
    elif case == "alg ECDH-ES+A256KW":
        compact = encrypt(CARD, public, alg="ECDH-ES+A256KW")
    elif case == "enc A128GCM":
        compact = encrypt(CARD, public, enc="A128GCM")
    elif case == "tag tampered":
        parts = encrypt(CARD, public).split(".")
        parts[4] = ("A" if parts[4][0] != "A" else "B") + parts[4][1:]
        compact = ".".join(parts)
    else:
        compact = encrypt(CARD, stranger)
    token = await _token(mtls_stack)
    response = await _order(
        mtls_stack,
        mtls_stack.pki.issuer_client(ISSUER_ID),
        token,
        _order_body(compact),
        card=f"card-jwe-{abs(hash(case)) % 10**8}",
    )
    assert response.status_code == 400, response.text
    body = response.json()
    # D1's documented code for undecryptable data, the field in error as a JSON path.
    assert body["errorCode"] == "CRYPTO_ERROR" and body["error"] == "$.encryptedData", body
    assert body["reason"] == reason.removeprefix("encryptedData: "), body
    assert "4929731640582292" not in response.text


def tls_failure(exc: BaseException) -> str:
    """Every message down the exception's chain: the product wraps a refused handshake in its
    own errors (D1Unavailable, TokenError) and keeps the TLS error as their context."""
    texts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(texts) < 10:
        texts.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


def d1_client_of(activities: list[Any]) -> Any:
    """The one D1 client the worker's activities share (each is a method bound to its holder)."""
    return next(act.__self__._d1 for act in activities if hasattr(act, "__self__"))


async def test_worker_refuses_an_emulator_certificate_from_another_ca(mtls_stack: MtlsStack) -> None:
    """The issuer side verifies D1's server certificate against D1_TLS_CA_FILE: the D1 client
    exactly as the worker builds it from its D1_* settings (worker.py), that one file changed."""
    settings = mtls_stack.d1_settings.model_copy(update={"tls_ca_file": mtls_stack.rogue_pki.ca_cert})
    async with d1_activities(settings) as activities:
        with pytest.raises(D1Unavailable) as refused:
            await d1_client_of(activities).production_status(ISSUER_ID, "card-tls-refused")
    assert "certificate verify failed" in tls_failure(refused.value), tls_failure(refused.value)
    async with d1_activities(mtls_stack.d1_settings) as activities:  # as configured: D1 answers
        assert await d1_client_of(activities).production_status(ISSUER_ID, "card-tls-refused") is None
