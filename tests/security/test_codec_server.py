"""The codec server over real HTTP: operators only (static tokens as headers, never in the
path; the loopback development mode of make run), card data masked, CORS for the UI; and
the real ``temporal`` CLI decoding a real order's history through it. SSO (OIDC) is in
test_codec_oidc.py."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from security.codec import AesGcmCodec, load_codec
from security.codec_auth import CodecAuth, CodecAuthConfigError
from security.codec_server import create_app
from security.operator_tokens import OperatorTokens, ensure_operator_token
from security.sealing import sealer_of
from settings import CodecServerSettings
from stack.servers import serve
from tests.conftest import temporal_cli
from tests.security.conftest import MtlsStack
from tests.security.support import ISSUER_ID, LEAK_PAN, find_leaks, leak_card_data, leak_track_data, readable
from tests.support.orders import sample_order
from tests.support.validation import validate_order

TOKEN = "operator-token-for-tests-0123456789"
PII_TOKEN = "operator-token-with-pii-role-98765"
NO_READ_TOKEN = "operator-token-without-read-role-4321"
UI = "http://localhost:8233"
MASKED_PAN = LEAK_PAN[:4] + "********" + LEAK_PAN[-4:]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def codec(codec_keys_file: Path) -> AesGcmCodec:
    return load_codec(codec_keys_file)


def _operators() -> OperatorTokens:
    """alice reads, bob reads with names and addresses, carol may sign in but not read."""
    return OperatorTokens(
        {"alice": TOKEN, "bob": PII_TOKEN, "carol": NO_READ_TOKEN},
        roles={"alice": ["card-orders-read"], "bob": ["card-orders-read", "card-orders-pii"], "carol": ["other"]},
    )


@asynccontextmanager
async def _codec_server(codec: AesGcmCodec, **auth: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The codec server app on a real loopback HTTP port, and a client for it."""
    app = create_app(codec, auth=CodecAuth(**{"allowed_origins": [UI], **auth}), cors_origins=[UI])
    async with serve(app, access_log=False) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


@pytest_asyncio.fixture
async def http(codec: AesGcmCodec) -> AsyncIterator[httpx.AsyncClient]:
    async with _codec_server(codec, tokens=_operators()) as client:
        yield client


async def _encrypted_order_body(codec: AesGcmCodec) -> dict[str, Any]:
    order = validate_order(sample_order("req-codec-1", cardData=leak_card_data(), trackData=leak_track_data()))
    payloads = pydantic_data_converter.payload_converter.to_payloads([order, "plain string"])
    sealed = await codec.encode(payloads)
    return json_format.MessageToDict(Payloads(payloads=sealed))


def _decoded_values(body: dict[str, Any]) -> list[Any]:
    message = json_format.ParseDict(body, Payloads())
    return [json.loads(p.data) for p in message.payloads]


@pytest.mark.parametrize(
    "auth", [None, "Bearer wrong-token-wrong-token", f"Basic {base64.b64encode(TOKEN.encode()).decode()}", TOKEN]
)
async def test_decode_refuses_a_caller_without_an_operator_credential(
    http: httpx.AsyncClient, codec: AesGcmCodec, auth: str | None
) -> None:
    body = await _encrypted_order_body(codec)
    headers = {"authorization": auth} if auth else {}
    for path in ("/decode", "/wrong-token-wrong-token/decode", f"/{TOKEN}/decode"):
        response = await http.post(path, json=body, headers=headers)
        assert response.status_code == 401, (path, auth)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert find_leaks("401 body", [response.text]) == []


async def test_a_token_in_the_path_does_not_authenticate_and_is_not_logged(
    http: httpx.AsyncClient, codec: AesGcmCodec, caplog: pytest.LogCaptureFixture
) -> None:
    body = await _encrypted_order_body(codec)
    with caplog.at_level(logging.INFO):
        refused = await http.post(f"/{TOKEN}/decode", json=body, headers={"origin": UI})
        # With a header it works (mounting at any depth stays possible), still flagged.
        accepted = await http.post(f"/{TOKEN}/decode", json=body, headers={"authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 401 and accepted.status_code == 200
    # Everything the server side logged (the test's own httpx client logs the URL it calls).
    server_side = [r.getMessage() for r in caplog.records if r.name != "httpx"]
    assert server_side and all(TOKEN not in m for m in server_side)
    assert sum("operator token appears in the codec endpoint path" in m for m in caplog.messages) == 2


@pytest.mark.parametrize("who", ["alice", "bob"])
async def test_decode_masks_card_data(
    http: httpx.AsyncClient, codec: AesGcmCodec, who: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = await _encrypted_order_body(codec)
    token = TOKEN if who == "alice" else PII_TOKEN
    with caplog.at_level(logging.INFO, logger="security.codec_server"):
        response = await http.post(
            "/decode", json=body, headers={"authorization": f"Bearer {token}", "x-namespace": "default"}
        )
    assert response.status_code == 200, response.text
    order, text = _decoded_values(response.json())
    assert text == "plain string"
    card = order["cardData"]
    assert card["pan"] == MASKED_PAN
    assert card["exp"] == card["cvv2"] == card["pvv"] == "***"
    assert {k: v for k, v in order["trackData"].items() if v is not None} == {"track1": "***", "track2": "***"}
    # Names and addresses only for an operator with the PII role (bob's line lists it).
    assert order["shipment"]["deliveryAddress"]["line1"] == ("10 Main St" if who == "bob" else "***")
    assert order["cardId"] == "card-req-codec-1"
    # The cardholder name is card data (inside cardData): masked with it.
    assert find_leaks("decoded", [response.text]) == []
    shown = "shown" if who == "bob" else "masked"
    assert any(f"for {who} (operator-token)" in m and f"PII {shown}" in m for m in caplog.messages), caplog.messages
    assert all(token not in m for m in caplog.messages)


async def test_pii_masked_when_configured(codec: AesGcmCodec) -> None:
    async with _codec_server(codec, tokens=_operators(), mask_pii=True) as http:
        response = await http.post(
            "/decode", json=await _encrypted_order_body(codec), headers={"authorization": f"Bearer {PII_TOKEN}"}
        )
    order, _ = _decoded_values(response.json())
    assert order["shipment"]["deliveryAddress"]["line1"] == "***"


async def test_decode_mounts_at_any_depth_and_refuses_bad_bodies(http: httpx.AsyncClient, codec: AesGcmCodec) -> None:
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"hello":"world"}')
    auth = {"authorization": f"Bearer {TOKEN}"}
    sealed = json_format.MessageToDict(Payloads(payloads=await codec.encode([plain])))
    mounted = await http.post("/some/prefix/decode", json=sealed, headers=auth)
    assert _decoded_values(mounted.json()) == [{"hello": "world"}]
    # Decoding says who sealed the payload (security/sealing.py); the rest is the payload.
    opened = json_format.ParseDict(mounted.json(), Payloads()).payloads[0]
    assert sealer_of(opened) == codec.sealer and opened.data == plain.data
    assert (await http.post("/decode", content=b"not json", headers=auth)).status_code == 400
    assert (await http.post("/nothing-here", json={}, headers=auth)).status_code == 404
    binary = Payload(metadata={"encoding": b"binary/plain"}, data=LEAK_PAN.encode())
    withheld = await http.post(
        "/decode", json=json_format.MessageToDict(Payloads(payloads=await codec.encode([binary]))), headers=auth
    )
    assert find_leaks("withheld", [withheld.text]) == []
    assert "withheld" in _decoded_values(withheld.json())[0]


@pytest.mark.parametrize("auth", [None, TOKEN, PII_TOKEN, NO_READ_TOKEN])
async def test_encode_is_gone_for_everyone(
    http: httpx.AsyncClient, codec: AesGcmCodec, auth: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """Sealing is each process's business with its role's key: nobody signed in here can forge a message."""
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"kind":"change"}')
    headers = {"authorization": f"Bearer {auth}"} if auth else {}
    with caplog.at_level(logging.INFO, logger="security.codec_server"):
        for path in ("/encode", "/some/prefix/encode"):
            response = await http.post(
                path, json=json_format.MessageToDict(Payloads(payloads=[plain])), headers=headers
            )
            assert response.status_code == 404 and "only decodes" in response.text, path
            assert "binary/encrypted" not in response.text
    assert sum("codec encode refused" in m for m in caplog.messages) == 2


async def test_decode_refuses_an_operator_without_the_read_role(
    http: httpx.AsyncClient, codec: AesGcmCodec, caplog: pytest.LogCaptureFixture
) -> None:
    body = await _encrypted_order_body(codec)
    with caplog.at_level(logging.INFO, logger="security.codec_server"):
        response = await http.post("/decode", json=body, headers={"authorization": f"Bearer {NO_READ_TOKEN}"})
    assert response.status_code == 403 and "payloads" not in response.json()
    assert find_leaks("403 body", [response.text]) == []
    assert any("for carol (operator-token): no read role" in m for m in caplog.messages), caplog.messages
    assert all(NO_READ_TOKEN not in m for m in caplog.messages)


async def test_cors_preflight_for_the_ui_origin(http: httpx.AsyncClient) -> None:
    preflight = await http.options(
        "/decode",
        headers={
            "origin": UI,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type,x-namespace",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == UI
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "x-namespace"} <= {h.strip() for h in allowed.split(",")}
    assert preflight.headers["access-control-allow-credentials"] == "true"
    stranger = await http.options(
        "/decode", headers={"origin": "http://evil.example", "access-control-request-method": "POST"}
    )
    assert "access-control-allow-origin" not in stranger.headers


def test_operator_tokens_file(tmp_path: Path) -> None:
    path = tmp_path / "ops"
    token = ensure_operator_token(path)
    assert ensure_operator_token(path) == token
    assert OperatorTokens.from_file(path).operator(token) == "local-operator"
    assert OperatorTokens.from_file(path).operator("x" * 32) is None
    path.write_text(f"# operators\nalice:{TOKEN}\nbob:{PII_TOKEN} card-orders-pii other\n")
    tokens = OperatorTokens.from_file(path)
    assert tokens.operator(PII_TOKEN) == "bob" and tokens.roles("bob") == {"card-orders-pii", "other"}
    assert tokens.roles("alice") == frozenset()
    assert ensure_operator_token(path, "bob") == PII_TOKEN
    # A role now required is added to an existing line, which keeps its token (make run's file).
    local = tmp_path / "local"
    token = ensure_operator_token(local)
    assert ensure_operator_token(local, roles=["card-orders-read"]) == token
    assert OperatorTokens.from_file(local).roles("local-operator") == {"card-orders-read"}
    path.write_text("broken-line\n")
    with pytest.raises(ValueError, match="name:token"):
        OperatorTokens.from_file(path)


# ---------------------------------------------------------------- development loopback mode


@pytest.mark.parametrize("with_tokens", [False, True])
async def test_dev_loopback_mode_trusts_the_local_ui_and_masks_pii(
    codec: AesGcmCodec, with_tokens: bool, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = _operators() if with_tokens else None
    body = await _encrypted_order_body(codec)
    async with _codec_server(codec, tokens=tokens, dev_trust_loopback=True) as http:
        with caplog.at_level(logging.INFO, logger="security.codec_server"):
            response = await http.post("/decode", json=body, headers={"origin": UI, "x-namespace": "default"})
        assert response.status_code == 200, response.text
        order, _ = _decoded_values(response.json())
        assert order["cardData"]["pan"] == MASKED_PAN
        assert order["shipment"]["deliveryAddress"]["line1"] == "***"  # PII always masked in this mode
        assert find_leaks("dev decode", [response.text]) == []
        assert any("for dev-loopback (dev-loopback)" in m and "PII masked" in m for m in caplog.messages)
        refused = {
            "no Origin": {},
            "a foreign page in the browser": {"origin": "http://evil.example"},
            "forwarded by a local proxy": {"origin": UI, "x-forwarded-for": "203.0.113.9"},
            "a wrong credential": {"origin": UI, "authorization": "Bearer wrong-token-wrong-token"},
        }
        for why, headers in refused.items():
            assert (await http.post("/decode", json=body, headers=headers)).status_code == 401, why
        if with_tokens:  # the CLI's header still works, with its own PII decision
            shown = await http.post("/decode", json=body, headers={"authorization": f"Bearer {PII_TOKEN}"})
            assert _decoded_values(shown.json())[0]["shipment"]["deliveryAddress"]["line1"] == "10 Main St"


async def test_dev_loopback_mode_refuses_a_peer_that_is_not_loopback(codec: AesGcmCodec) -> None:
    # The server refuses to bind anything but loopback in this mode, so a foreign peer cannot
    # be produced over real HTTP here; the ASGI transport lets the test name the peer address.
    app = create_app(codec, auth=CodecAuth(dev_trust_loopback=True, allowed_origins=[UI]), cors_origins=[UI])
    body = await _encrypted_order_body(codec)
    for peer, expected in (("192.0.2.7", 401), ("127.0.0.1", 200), ("::1", 200)):
        transport = httpx.ASGITransport(app=app, client=(peer, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://codec") as http:
            response = await http.post("/decode", json=body, headers={"origin": UI})
        assert response.status_code == expected, peer


def test_dev_loopback_mode_only_on_a_loopback_address() -> None:
    for host in ("127.0.0.1", "localhost", "::1"):
        assert (
            "dev-loopback" in CodecAuth.from_settings(CodecServerSettings(host=host, dev_trust_loopback=True)).methods
        )
    for host in ("0.0.0.0", "::", "192.0.2.7", "codec.bank.test"):  # noqa: S104
        with pytest.raises(CodecAuthConfigError, match="loopback"):
            CodecAuth.from_settings(CodecServerSettings(host=host, dev_trust_loopback=True))


def _start_codec_server(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEC_SERVER_")}
    return subprocess.run(
        [sys.executable, "-m", "security.codec_server"],
        env={**clean, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_the_server_refuses_to_start_without_a_way_to_authenticate() -> None:
    done = _start_codec_server({})
    assert done.returncode == 2, done.stderr
    assert "no way to authenticate operators" in done.stderr and "CODEC_SERVER_OIDC_ISSUER" in done.stderr


def test_the_server_refuses_to_start_in_dev_mode_on_all_interfaces() -> None:
    done = _start_codec_server({"CODEC_SERVER_DEV_TRUST_LOOPBACK": "true", "CODEC_SERVER_HOST": "0.0.0.0"})  # noqa: S104
    assert done.returncode == 2, done.stderr
    assert "CODEC_SERVER_DEV_TRUST_LOOPBACK" in done.stderr and "loopback" in done.stderr


async def _cli_show(
    stack: MtlsStack, workflow_id: str, *extra: str, env_extra: dict[str, str] | None = None
) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")} | (env_extra or {})
    proc = await asyncio.create_subprocess_exec(
        temporal_cli(),
        "workflow",
        "show",
        "-w",
        workflow_id,
        "--address",
        stack.temporal_address,
        "--namespace",
        "default",
        "--output",
        "json",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_temporal_cli_reads_history_through_the_codec_server_masked(
    mtls_stack: MtlsStack, codec: AesGcmCodec
) -> None:
    rid = "req-codec-cli-0001"
    await mtls_stack.orders.submit(sample_order(rid, cardData=leak_card_data(), trackData=leak_track_data()))
    view = await mtls_stack.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome is not None and view.state.outcome.value == "DELIVERED"
    app = create_app(codec, auth=CodecAuth(tokens=_operators()), cors_origins=[UI])
    async with serve(app, access_log=False) as url:
        # The token travels in the CLI's environment (TEMPORAL_CODEC_AUTH), not on its command line.
        code, decoded = await _cli_show(
            mtls_stack, view.workflow_id, "--codec-endpoint", url, env_extra={"TEMPORAL_CODEC_AUTH": f"Bearer {TOKEN}"}
        )
        assert code == 0, decoded
        shown = readable(decoded)
        assert MASKED_PAN in shown and "10 Main St" not in shown  # decoded, card data and PII masked
        assert find_leaks("CLI via codec server", [decoded]) == []
        # An operator whose line lists the PII role sees the address (--codec-auth works too).
        code, with_pii = await _cli_show(
            mtls_stack, view.workflow_id, "--codec-endpoint", url, "--codec-auth", f"Bearer {PII_TOKEN}"
        )
        assert code == 0 and "10 Main St" in readable(with_pii) and find_leaks("CLI, PII role", [with_pii]) == []
        # Without the credential, or with it in the endpoint path, the codec server answers 401
        # and the CLI gets nothing decoded.
        for endpoint in (url, f"{url}/{TOKEN}"):
            code, refused = await _cli_show(
                mtls_stack, view.workflow_id, "--codec-endpoint", endpoint, "--command-timeout", "3s"
            )
            assert code != 0 and MASKED_PAN not in refused and find_leaks("CLI refused", [refused]) == []
