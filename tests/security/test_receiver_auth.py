"""The receiver refuses every caller that is not D1 for this issuer (auth.md §1, §5).

Against the real mTLS receiver of ``mtls_stack``: TLS refuses a missing or foreign
certificate at the handshake; the app refuses a certificate of another tenant or of the
wrong kind (403) and, with outbound OAuth on, a missing, forged or expired bearer token
(401). The token endpoint follows RFC 6749 §4.4 with HTTP Basic client authentication.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid

import httpx
import pytest

from d1.paths import notification_path
from receiver.auth import TokenIssuer
from security.transport import InsecureConfiguration, d1_http_verify, receiver_server_options
from settings import D1ClientSettings, ReceiverSettings
from tests.security.conftest import OAUTH_CLIENT_ID, OAUTH_SECRET, MtlsStack
from tests.security.support import ISSUER_ID, OTHER_ISSUER_ID
from tests.support.notifications import operation


def _body() -> dict[str, object]:
    # An unknown order: a legitimate caller gets 204 (recorded as an orphan).
    return {"operations": [operation("CARD_PROD_REQUESTED", card_id=f"card-{uuid.uuid4().hex[:8]}", request_id=None)]}


async def _token(stack: MtlsStack) -> str:
    async with stack.http(stack.pki.notifier_client(ISSUER_ID)) as http:
        response = await http.post(
            f"{stack.receiver_url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(OAUTH_CLIENT_ID, OAUTH_SECRET),
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def _notify(stack: MtlsStack, http: httpx.AsyncClient, *, issuer: str = ISSUER_ID,
                  token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await http.post(f"{stack.receiver_url}{notification_path(issuer)}", json=_body(), headers=headers)


async def test_d1_with_its_certificate_and_token_is_accepted(mtls_stack: MtlsStack) -> None:
    token = await _token(mtls_stack)
    async with mtls_stack.http(mtls_stack.pki.notifier_client(ISSUER_ID)) as http:
        assert (await _notify(mtls_stack, http, token=token)).status_code == 204


@pytest.mark.parametrize("who", ["no certificate", "certificate from another CA"])
async def test_connection_without_a_valid_client_certificate_fails_the_tls_handshake(
    mtls_stack: MtlsStack, who: str
) -> None:
    token = await _token(mtls_stack)
    pair = None if who == "no certificate" else mtls_stack.rogue_pki.notifier_client(ISSUER_ID)
    async with mtls_stack.http(pair) as http:
        with pytest.raises(httpx.TransportError):
            await _notify(mtls_stack, http, token=token)
        with pytest.raises(httpx.TransportError):
            await http.post(f"{mtls_stack.receiver_url}/oauth2/token", data={"grant_type": "client_credentials"},
                            auth=(OAUTH_CLIENT_ID, OAUTH_SECRET))


async def test_server_certificate_from_another_ca_is_not_trusted(mtls_stack: MtlsStack) -> None:
    """Both ways: D1 (the caller) verifies the receiver against its configured CA too."""
    context = mtls_stack.tls(mtls_stack.pki.notifier_client(ISSUER_ID), ca=mtls_stack.rogue_pki.ca_cert)
    async with httpx.AsyncClient(verify=context) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{mtls_stack.receiver_url}/healthz")


@pytest.mark.parametrize(
    ("label", "cert_of", "path_issuer"),
    [
        ("D1 certificate of another tenant", "notifier:other", ISSUER_ID),
        ("the issuer's own D1 client certificate", "issuer:self", ISSUER_ID),
        ("right certificate, other issuer in the path", "notifier:self", OTHER_ISSUER_ID),
    ],
)
async def test_certificate_identity_must_match_the_issuer_in_the_path(
    mtls_stack: MtlsStack, label: str, cert_of: str, path_issuer: str
) -> None:
    token = await _token(mtls_stack)
    pki = mtls_stack.pki
    pair = {
        "notifier:other": pki.notifier_client(OTHER_ISSUER_ID),
        "issuer:self": pki.issuer_client(ISSUER_ID),
        "notifier:self": pki.notifier_client(ISSUER_ID),
    }[cert_of]
    async with mtls_stack.http(pair) as http:
        response = await _notify(mtls_stack, http, issuer=path_issuer, token=token)
    assert response.status_code == 403, label
    assert response.json() == {"error": "the client certificate does not match this issuer"}


@pytest.mark.parametrize("case", ["missing", "not bearer", "garbage", "forged", "expired", "basic credentials"])
async def test_outbound_oauth_requires_a_valid_bearer_token(mtls_stack: MtlsStack, case: str) -> None:
    good = await _token(mtls_stack)
    forged = TokenIssuer(OAUTH_CLIENT_ID, "another-secret-entirely", scope="d1-notifications", lifetime_s=900).mint()
    expired = TokenIssuer(
        OAUTH_CLIENT_ID, OAUTH_SECRET, scope="d1-notifications", lifetime_s=60, clock=lambda: time.time() - 3600
    ).mint()
    header = {
        "missing": None,
        "not bearer": f"Token {good}",
        "garbage": "Bearer not-a-token",
        "forged": f"Bearer {forged['access_token']}",
        "expired": f"Bearer {expired['access_token']}",
        "basic credentials": "Basic " + base64.b64encode(f"{OAUTH_CLIENT_ID}:{OAUTH_SECRET}".encode()).decode(),
    }[case]
    async with mtls_stack.http(mtls_stack.pki.notifier_client(ISSUER_ID)) as http:
        response = await http.post(
            f"{mtls_stack.receiver_url}{notification_path(ISSUER_ID)}",
            json=_body(),
            headers={"authorization": header} if header else {},
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_token_endpoint_client_credentials_grant(mtls_stack: MtlsStack) -> None:
    async with mtls_stack.http(mtls_stack.pki.notifier_client(ISSUER_ID)) as http:
        url = f"{mtls_stack.receiver_url}/oauth2/token"
        ok = await http.post(url, data={"grant_type": "client_credentials", "scope": "d1-notifications"},
                             auth=(OAUTH_CLIENT_ID, OAUTH_SECRET))
        assert ok.status_code == 200
        body = ok.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 900 and body["scope"] == "d1-notifications"
        assert body["expires_at"].endswith("Z") and body["access_token"]
        assert ok.headers["cache-control"] == "no-store"

        wrong_secret = await http.post(url, data={"grant_type": "client_credentials"}, auth=(OAUTH_CLIENT_ID, "nope"))
        assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
        assert wrong_secret.headers["www-authenticate"].startswith("Basic")
        no_auth = await http.post(url, data={"grant_type": "client_credentials"})
        assert no_auth.status_code == 401 and no_auth.json()["error"] == "invalid_client"
        wrong_grant = await http.post(url, data={"grant_type": "password"}, auth=(OAUTH_CLIENT_ID, OAUTH_SECRET))
        assert wrong_grant.status_code == 400 and wrong_grant.json()["error"] == "unsupported_grant_type"
        as_json = await http.post(url, json={"grant_type": "client_credentials"}, auth=(OAUTH_CLIENT_ID, OAUTH_SECRET))
        assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
        bad_scope = await http.post(url, data={"grant_type": "client_credentials", "scope": "admin"},
                                    auth=(OAUTH_CLIENT_ID, OAUTH_SECRET))
        assert bad_scope.status_code == 400 and bad_scope.json()["error"] == "invalid_scope"
    async with mtls_stack.http(mtls_stack.pki.issuer_client(ISSUER_ID)) as http:
        not_d1 = await http.post(url, data={"grant_type": "client_credentials"}, auth=(OAUTH_CLIENT_ID, OAUTH_SECRET))
        assert not_d1.status_code == 403


def test_plain_http_needs_the_explicit_development_flag(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(InsecureConfiguration, match="RECEIVER_ALLOW_PLAINTEXT"):
        receiver_server_options(ReceiverSettings())
    with pytest.raises(InsecureConfiguration, match="together"):
        receiver_server_options(ReceiverSettings(tls_cert_file="x.crt"))
    with caplog.at_level(logging.WARNING, logger="security.transport"):
        assert receiver_server_options(ReceiverSettings(allow_plaintext=True)) == {}
    assert "DEVELOPMENT MODE (RECEIVER_ALLOW_PLAINTEXT=true)" in caplog.text

    caplog.clear()
    http_urls = {"banking_url": "http://127.0.0.1:1/banking/v1", "authz_url": "http://127.0.0.1:1/authz/v1"}
    with pytest.raises(InsecureConfiguration, match="D1_ALLOW_PLAINTEXT"):
        d1_http_verify(D1ClientSettings(**http_urls))
    with pytest.raises(InsecureConfiguration, match="D1_TLS_CLIENT_CERT_FILE"):
        d1_http_verify(D1ClientSettings())  # https by default, but no client certificate
    with caplog.at_level(logging.WARNING, logger="security.transport"):
        assert d1_http_verify(D1ClientSettings(allow_plaintext=True, **http_urls)) is True
    assert "DEVELOPMENT MODE (D1_ALLOW_PLAINTEXT=true)" in caplog.text
