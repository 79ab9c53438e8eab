"""The receiver refuses every caller that is not D1 for this issuer (docs/d1/auth.md §2, §6).

Against the real mTLS receiver of ``mtls_stack``: TLS refuses a missing or foreign
certificate at the handshake; the app refuses a certificate of another tenant or of the
wrong kind (403) and, with outbound OAuth on, a missing, forged, expired or malformed
bearer token (401) and a genuine token issued for another issuer or scope (403). The token
endpoint follows RFC 6749 §4.4 with HTTP Basic client authentication and answers what
D1's client expects (``expires_in`` a string, ``expires_at``). Operators read
``/_receiver/stats`` with a token from ``RECEIVER_OPERATOR_TOKENS_FILE`` only.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from starlette.requests import Request

from d1.paths import notification_path
from emulator.outbound import OutboundHttp
from receiver.app import create_app
from receiver.auth import ReceiverAuth, TokenIssuer, issuers_named
from receiver.routing import NotificationRouter
from security.pki import CertPair
from security.tls import CertIdentity
from security.transport import InsecureConfiguration, d1_http_verify, receiver_server_options
from settings import D1ClientSettings, ReceiverSettings
from tests.security.conftest import OAUTH_CLIENT_ID, OAUTH_SECRET, RECEIVER_OPERATOR_TOKEN, MtlsStack
from tests.security.support import ISSUER_ID, OTHER_ISSUER_ID
from tests.support.notifications import operation


def _body() -> dict[str, object]:
    # An unknown order: a legitimate caller gets 204 (recorded as an orphan).
    return {"operations": [operation("CARD_PROD_REQUESTED", card_id=f"card-{uuid.uuid4().hex[:8]}", request_id=None)]}


async def _token(stack: MtlsStack, cert: CertPair | None = None) -> str:
    async with stack.http(cert or stack.pki.notifier_client(ISSUER_ID)) as http:
        response = await http.post(
            f"{stack.receiver_url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(OAUTH_CLIENT_ID, OAUTH_SECRET),
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def _notify(
    stack: MtlsStack, http: httpx.AsyncClient, *, issuer: str = ISSUER_ID, token: str | None = None
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await http.post(f"{stack.receiver_url}{notification_path(issuer)}", json=_body(), headers=headers)


async def test_d1_with_its_certificate_and_token_is_accepted(mtls_stack: MtlsStack) -> None:
    token = await _token(mtls_stack)
    async with mtls_stack.http(mtls_stack.pki.notifier_client(ISSUER_ID)) as http:
        assert (await _notify(mtls_stack, http, token=token)).status_code == 204


def _notifier(stack: MtlsStack, **changes: Any) -> OutboundHttp:
    """The emulator's notifier (its outbound HTTP client), configured as the stack configures
    it but for ``changes``."""
    settings = stack.local.emulator_settings()
    assert settings.outbound_oauth_token_url == f"{stack.receiver_url}/oauth2/token"
    return OutboundHttp(settings.model_copy(update=changes))


async def _notify_as_the_emulator(stack: MtlsStack, **changes: Any) -> httpx.TransportError:
    """One notification through the emulator's notifier to the receiver as configured."""
    notifier = _notifier(stack, **changes)
    try:
        with pytest.raises(httpx.TransportError) as refused:
            await notifier.post(
                ISSUER_ID,
                f"{stack.receiver_url}{notification_path(ISSUER_ID)}",
                content=json.dumps(_body()).encode(),
                headers={"content-type": "application/json"},
            )
    finally:
        await notifier.aclose()
    return refused.value


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, host: str) -> dict[str, str]:
    """A TLS handshake between two contexts in memory, and the error each side saw.

    Over a socket, a server that refuses a client certificate under TLS 1.3 closes the
    connection, and the reset usually overtakes its alert: the caller sees only
    "connection reset". In memory nothing is lost, so the reason can be asserted."""
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    sides = {
        "client": client.wrap_bio(client_in, client_out, server_hostname=host),
        "server": server.wrap_bio(server_in, server_out, server_side=True),
    }
    errors = {"client": "", "server": ""}
    for _ in range(10):
        for name, side in sides.items():
            if errors[name]:
                continue
            try:
                side.do_handshake()
                side.read(1)  # a TLS 1.3 client learns of its refusal after its own handshake ended
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as err:
                errors[name] = str(err)
            if name == "client":
                server_in.write(client_out.read())
            else:
                client_in.write(server_out.read())
    return errors


def _receiver_server_context(stack: MtlsStack) -> ssl.SSLContext:
    """The SSL context the receiver serves with: uvicorn's, from the receiver's settings."""
    config = uvicorn.Config(app=create_app, log_config=None, **receiver_server_options(stack.receiver_settings))
    config.load()
    assert config.ssl is not None
    return config.ssl


@pytest.mark.parametrize(
    ("who", "client_sees", "receiver_sees"),
    [
        ("no certificate", "certificate required", "peer did not return a certificate"),
        ("certificate from another CA", "unknown ca", "certificate verify failed"),
    ],
)
async def test_connection_without_a_valid_client_certificate_fails_the_tls_handshake(
    mtls_stack: MtlsStack, who: str, client_sees: str, receiver_sees: str
) -> None:
    if who == "no certificate":
        changes: dict[str, Any] = {"notify_client_cert_file": None, "notify_client_key_file": None}
    else:
        rogue = mtls_stack.rogue_pki.notifier_client_template
        changes = {"notify_client_cert_file": str(rogue.cert), "notify_client_key_file": str(rogue.key)}
    # Refused at the transport, never answered: with outbound OAuth the notifier's first call is
    # the token endpoint; without, the notification itself.
    for oauth in ({}, {"outbound_oauth_token_url": None}):
        refused = await _notify_as_the_emulator(mtls_stack, **changes, **oauth)
        assert isinstance(refused, httpx.ReadError | httpx.ConnectError | httpx.RemoteProtocolError), repr(refused)
    # Why: the same two TLS configurations, the handshake watched from both sides.
    host = httpx.URL(mtls_stack.receiver_url).host
    client = _notifier(mtls_stack, **changes)._verify(ISSUER_ID)
    assert isinstance(client, ssl.SSLContext)
    errors = _handshake(client, _receiver_server_context(mtls_stack), host)
    assert client_sees in errors["client"] and receiver_sees in errors["server"], errors
    # The stack's own notifier configuration completes the same handshake.
    assert _handshake(_notifier(mtls_stack)._verify(ISSUER_ID), _receiver_server_context(mtls_stack), host) == {
        "client": "",
        "server": "",
    }


async def test_server_certificate_from_another_ca_is_not_trusted(mtls_stack: MtlsStack) -> None:
    """Both ways: D1 (the caller) verifies the receiver against its configured CA too."""
    refused = await _notify_as_the_emulator(mtls_stack, notify_ca_file=mtls_stack.rogue_pki.ca_cert)
    assert "certificate verify failed" in str(refused), repr(refused)


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
        ok = await http.post(
            url,
            data={"grant_type": "client_credentials", "scope": "d1-notifications"},
            auth=(OAUTH_CLIENT_ID, OAUTH_SECRET),
        )
        assert ok.status_code == 200
        body = ok.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == "900" and body["scope"] == "d1-notifications"
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
        bad_scope = await http.post(
            url, data={"grant_type": "client_credentials", "scope": "admin"}, auth=(OAUTH_CLIENT_ID, OAUTH_SECRET)
        )
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


# ---------------------------------------------------------------- tokens bound to client, scope, issuer


def _claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return claims


async def test_token_response_is_what_d1_expects_and_names_client_scope_and_issuer(mtls_stack: MtlsStack) -> None:
    for issuer in (ISSUER_ID, OTHER_ISSUER_ID):
        async with mtls_stack.http(mtls_stack.pki.notifier_client(issuer)) as http:
            response = await http.post(
                f"{mtls_stack.receiver_url}/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(OAUTH_CLIENT_ID, OAUTH_SECRET),
            )
        assert response.status_code == 200, response.text
        body = response.json()
        # D1's outbound token spec types expires_in as a string of seconds, and lists expires_at.
        assert body["expires_in"] == "900" and isinstance(body["expires_in"], str)
        expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
        assert abs((expires_at - datetime.now(UTC)).total_seconds() - 900) < 30
        claims = _claims(body["access_token"])
        assert claims["sub"] == claims["client_id"] == OAUTH_CLIENT_ID
        assert claims["scope"] == body["scope"] == "d1-notifications"
        # Learnt from the caller's certificate (urn:d1:notifier:<issuerId>), not from the request.
        assert claims["issuer_id"] == issuer


async def test_token_issued_for_another_issuer_is_refused(mtls_stack: MtlsStack) -> None:
    pki = mtls_stack.pki
    other_token = await _token(mtls_stack, pki.notifier_client(OTHER_ISSUER_ID))
    async with mtls_stack.http(pki.notifier_client(OTHER_ISSUER_ID)) as http:
        assert (await _notify(mtls_stack, http, issuer=OTHER_ISSUER_ID, token=other_token)).status_code == 204
    unbound = TokenIssuer(OAUTH_CLIENT_ID, OAUTH_SECRET, scope="d1-notifications", lifetime_s=900).mint()
    async with mtls_stack.http(pki.notifier_client(ISSUER_ID)) as http:
        for token in (other_token, str(unbound["access_token"])):
            response = await _notify(mtls_stack, http, issuer=ISSUER_ID, token=token)
            assert response.status_code == 403, response.text
            assert response.json() == {"error": "the token was not issued for this issuer"}
            assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_token_without_the_notification_scope_is_refused(mtls_stack: MtlsStack) -> None:
    # Genuine tokens (same client and secret) of a client granted two scopes.
    wider = TokenIssuer(OAUTH_CLIENT_ID, OAUTH_SECRET, scope="d1-notifications d1-card-activation", lifetime_s=900)
    activation_only = str(wider.mint(scope=["d1-card-activation"], issuer_id=ISSUER_ID)["access_token"])
    notifications = str(wider.mint(scope=["d1-notifications"], issuer_id=ISSUER_ID)["access_token"])
    async with mtls_stack.http(mtls_stack.pki.notifier_client(ISSUER_ID)) as http:
        assert (await _notify(mtls_stack, http, token=notifications)).status_code == 204
        response = await _notify(mtls_stack, http, token=activation_only)
    assert response.status_code == 403
    assert response.json() == {"error": "the token's scope does not include d1-notifications"}
    assert response.headers["www-authenticate"] == (
        'Bearer realm="d1-notifications", error="insufficient_scope", scope="d1-notifications"'
    )


def test_scope_grant_follows_rfc_6749_section_3_3() -> None:
    issuer = TokenIssuer("c", "s", scope="a b", lifetime_s=60)
    assert issuer.grant("") == frozenset({"a", "b"})  # nothing asked: everything granted
    assert issuer.grant("b") == frozenset({"b"})
    assert issuer.grant("a c") is None
    claims = issuer.verify(str(issuer.mint(scope=issuer.grant("b"), issuer_id="TESTISS001")["access_token"]))
    assert claims is not None and claims.scope == {"b"} and claims.issuer_id == "TESTISS001"
    with pytest.raises(ValueError, match="not among the scopes granted"):
        ReceiverAuth.from_settings(
            ReceiverSettings(
                oauth_enabled=True,
                oauth_client_id="c",
                oauth_client_secret=SecretStr("s"),
                oauth_scope="d1-card-activation",
                oauth_notification_scope="d1-notifications",
            )
        )


def test_issuer_is_read_from_the_identity_template() -> None:
    identity = CertIdentity(common_name="D1-NOTIFIER/TESTISS001", uris=("urn:d1:notifier:TESTISS001",))
    assert issuers_named(identity, "urn:d1:notifier:{issuerId}") == {"TESTISS001"}
    assert issuers_named(identity, "D1-NOTIFIER/{issuerId}") == {"TESTISS001"}
    assert issuers_named(identity, "urn:d1:notifier") == frozenset()
    assert issuers_named(CertIdentity(uris=("urn:d1:notifier:SHORT",)), "urn:d1:notifier:{issuerId}") == frozenset()
    two = CertIdentity(uris=("urn:d1:notifier:TESTISS001", "urn:d1:notifier:OTHERISS02"))
    assert issuers_named(two, "urn:d1:notifier:{issuerId}") == {"TESTISS001", "OTHERISS02"}


def _request(identity: CertIdentity, authorization: str) -> Request:
    return Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/",
            "query_string": b"",
            "headers": [(b"authorization", authorization.encode("latin-1"))],
            "extensions": {"tls": {"identity": identity}},
        }
    )


def test_a_fixed_identity_template_issues_tokens_for_every_issuer() -> None:
    """A real D1 certificate may name D1 only (no {issuerId}): tokens then carry no issuer."""
    oauth = TokenIssuer(OAUTH_CLIENT_ID, OAUTH_SECRET, scope="d1-notifications", lifetime_s=900)
    auth = ReceiverAuth(require_client_cert=True, identity_template="urn:d1:notifier", oauth=oauth)
    assert not auth.binds_issuer
    token = str(oauth.mint()["access_token"])
    d1 = CertIdentity(uris=("urn:d1:notifier",))
    for issuer in (ISSUER_ID, OTHER_ISSUER_ID):
        assert auth.check_notification(_request(d1, f"Bearer {token}"), issuer) is None
    bound = ReceiverAuth(require_client_cert=True, oauth=oauth)
    refusal = bound.check_notification(
        _request(CertIdentity(uris=(f"urn:d1:notifier:{ISSUER_ID}",)), f"Bearer {token}"), ISSUER_ID
    )
    assert refusal is not None and refusal.status_code == 403


# ---------------------------------------------------------------- malformed credentials: 401, never 500


async def _good_token_with_bad_signature_char(stack: MtlsStack) -> bytes:
    token = (await _token(stack)).encode("ascii")
    return b"Bearer " + token[:-1] + b"\xe9"  # latin-1 "é" where the signature ends


MALFORMED_BEARER: dict[str, bytes] = {
    "non-ASCII (UTF-8)": "Bearer ünïcode".encode(),
    "not UTF-8 nor ASCII": b"Bearer \xff\xfe\x80",
    "non-ASCII claims in a token's shape": b"Bearer v1.\xc3\xbc\xc3\xbc." + b"A" * 43,
    "scheme without a value": b"Bearer",
    "the scheme twice": b"Bearer Bearer",
    "three dots": b"Bearer ...",
    "four parts": b"Bearer v1.eyJ9.AAAA.BBBB",
    "empty parts": b"Bearer v1..",
    "not base64": b"Bearer v1.!!!!." + b"A" * 43,
    # Longer than any credential we read (4 KiB) but within uvicorn's 16 KiB header limit.
    "huge": b"Bearer " + b"A" * 12_000,
    "huge, token-shaped": b"Bearer v1." + b"A" * 12_000 + b"." + b"A" * 43,
}


@pytest.mark.parametrize("case", [*MALFORMED_BEARER, "non-ASCII signature of a real token"])
async def test_malformed_bearer_header_gets_401(mtls_stack: MtlsStack, case: str) -> None:
    header = MALFORMED_BEARER.get(case) or await _good_token_with_bad_signature_char(mtls_stack)
    async with mtls_stack.http(mtls_stack.pki.notifier_client(ISSUER_ID)) as http:
        response = await http.post(
            f"{mtls_stack.receiver_url}{notification_path(ISSUER_ID)}",
            json=_body(),
            headers=[(b"authorization", header)],
        )
        assert response.status_code == 401, (case, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        stats = await http.get(f"{mtls_stack.receiver_url}/_receiver/stats", headers=[(b"authorization", header)])
        assert stats.status_code == 401, (case, stats.text)


def _b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


MALFORMED_BASIC: dict[str, bytes] = {
    "non-ASCII (UTF-8)": "Basic ünïcode".encode(),
    "not UTF-8 nor ASCII": b"Basic \xff\xfe\x80",
    "base64 with a latin-1 letter": b"Basic " + _b64(f"{OAUTH_CLIENT_ID}:{OAUTH_SECRET}".encode()) + b"\xe9",
    "scheme without a value": b"Basic",
    "the scheme twice": b"Basic Basic",
    "not base64": b"Basic !!!!",
    "bad padding": b"Basic ZDE=tb3V0",
    "base64 of bytes that are not UTF-8": b"Basic " + _b64(b"\xff\xfe:\xfd\xfc"),
    "no colon": b"Basic " + _b64(OAUTH_CLIENT_ID.encode()),
    "huge": b"Basic " + b"QUFB" * 3_000,
}


@pytest.mark.parametrize("case", MALFORMED_BASIC)
async def test_malformed_basic_header_at_the_token_endpoint_gets_401(mtls_stack: MtlsStack, case: str) -> None:
    async with mtls_stack.http(mtls_stack.pki.notifier_client(ISSUER_ID)) as http:
        response = await http.post(
            f"{mtls_stack.receiver_url}/oauth2/token",
            content=b"grant_type=client_credentials",
            headers=[
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"authorization", MALFORMED_BASIC[case]),
            ],
        )
    assert response.status_code == 401, (case, response.text)
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_header_beyond_the_http_layers_limit_is_refused_without_an_error(mtls_stack: MtlsStack) -> None:
    """Past uvicorn's header limit the HTTP layer answers (400) before the app; never a 500."""
    async with mtls_stack.http(mtls_stack.pki.notifier_client(ISSUER_ID)) as http:
        for header in (b"Bearer " + b"A" * 200_000, b"Basic " + b"QUFB" * 50_000):
            for path in (notification_path(ISSUER_ID), "/oauth2/token"):
                response = await http.post(
                    f"{mtls_stack.receiver_url}{path}", content=b"{}", headers=[(b"authorization", header)]
                )
                assert response.status_code in (400, 401), (path, response.status_code)
        assert (await http.get(f"{mtls_stack.receiver_url}/healthz")).status_code == 200


# ---------------------------------------------------------------- /_receiver/stats: operators only


async def test_receiver_stats_answer_only_to_an_operator_token(mtls_stack: MtlsStack) -> None:
    url = f"{mtls_stack.receiver_url}/_receiver/stats"
    notifier_token = await _token(mtls_stack)
    async with mtls_stack.http(mtls_stack.pki.notifier_client(ISSUER_ID)) as http:
        for headers in (
            {},
            {"authorization": "Bearer not-an-operator-token"},
            {"authorization": f"Bearer {notifier_token}"},  # D1's token is no operator credential
            {"authorization": f"Basic {RECEIVER_OPERATOR_TOKEN}"},
        ):
            refused = await http.get(url, headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json() == {"error": "an operator token is required"}
            assert refused.headers["www-authenticate"] == 'Bearer realm="receiver-operators"'
        ok = await http.get(url, headers={"authorization": f"Bearer {RECEIVER_OPERATOR_TOKEN}"})
    assert ok.status_code == 200
    assert {"received", "signaled", "orphaned", "byOperation", "recentOrphans"} <= set(ok.json())


async def test_receiver_stats_do_not_exist_without_an_operator_tokens_file(mtls_stack: MtlsStack) -> None:
    assert ReceiverAuth.from_settings(ReceiverSettings()).operators is None
    router = NotificationRouter(mtls_stack.client, "unused")
    for auth in (ReceiverAuth(require_client_cert=False), None):
        app = create_app(router, auth=auth)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as http:
            response = await http.get(
                "/_receiver/stats", headers={"authorization": f"Bearer {RECEIVER_OPERATOR_TOKEN}"}
            )
        assert response.status_code == 404, auth
