"""The codec server: operators only, card data masked, CORS for the UI; and the real
``temporal`` CLI decoding a real order's history through it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from security.codec import AesGcmCodec, load_codec
from security.codec_server import OperatorTokens, create_app, ensure_operator_token
from tests.conftest import temporal_cli
from tests.security.conftest import MtlsStack
from tests.security.support import (
    ISSUER_ID,
    LEAK_PAN,
    find_leaks,
    leak_card_data,
    leak_track_data,
    readable,
)
from tests.support.orders import sample_order
from tests.support.servers import serve
from tests.support.validation import validate_order

TOKEN = "operator-token-for-tests-0123456789"
UI = "http://localhost:8233"
MASKED_PAN = LEAK_PAN[:6] + "******" + LEAK_PAN[-4:]


@pytest.fixture
def codec(codec_keys_file: Path) -> AesGcmCodec:
    return load_codec(codec_keys_file)


@pytest_asyncio.fixture
async def http(codec: AesGcmCodec) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(codec, operators=OperatorTokens({"alice": TOKEN}), cors_origins=[UI])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://codec") as client:
        yield client


async def _encrypted_order_body(codec: AesGcmCodec) -> dict[str, Any]:
    order = validate_order(
        sample_order("req-codec-1", cardData=leak_card_data(), trackData=leak_track_data())
    )
    payloads = pydantic_data_converter.payload_converter.to_payloads([order, "plain string"])
    sealed = await codec.encode(payloads)
    return json_format.MessageToDict(Payloads(payloads=sealed))


def _decoded_values(body: dict[str, Any]) -> list[Any]:
    message = json_format.ParseDict(body, Payloads())
    return [json.loads(p.data) for p in message.payloads]


@pytest.mark.parametrize(
    "auth",
    [None, "Bearer wrong-token-wrong-token", f"Basic {base64.b64encode(TOKEN.encode()).decode()}", TOKEN],
)
async def test_decode_refuses_a_caller_without_an_operator_credential(
    http: httpx.AsyncClient, codec: AesGcmCodec, auth: str | None
) -> None:
    body = await _encrypted_order_body(codec)
    headers = {"authorization": auth} if auth else {}
    for path in ("/decode", "/encode", "/wrong-token-wrong-token/decode"):
        response = await http.post(path, json=body, headers=headers)
        assert response.status_code == 401, (path, auth)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert find_leaks("401 body", [response.text]) == []


@pytest.mark.parametrize("how", ["bearer header", "token in the endpoint path"])
async def test_decode_masks_card_data(http: httpx.AsyncClient, codec: AesGcmCodec, how: str) -> None:
    body = await _encrypted_order_body(codec)
    if how == "bearer header":
        headers = {"authorization": f"Bearer {TOKEN}", "x-namespace": "default"}
        response = await http.post("/decode", json=body, headers=headers)
    else:
        response = await http.post(f"/{TOKEN}/decode", json=body)
    assert response.status_code == 200, response.text
    order, text = _decoded_values(response.json())
    assert text == "plain string"
    card = order["cardData"]
    assert card["pan"] == MASKED_PAN
    assert card["exp"] == card["cvv2"] == card["pvv"] == "***"
    assert {k: v for k, v in order["trackData"].items() if v is not None} == {"track1": "***", "track2": "***"}
    assert order["shipment"]["deliveryAddress"]["line1"] == "10 Main St"  # operators see the address
    assert order["cardId"] == "card-req-codec-1"
    # The cardholder name is card data (inside cardData): masked with it.
    assert find_leaks("decoded", [response.text]) == []


async def test_pii_masked_when_configured(codec: AesGcmCodec) -> None:
    app = create_app(codec, operators=OperatorTokens({"alice": TOKEN}), cors_origins=[UI], mask_pii=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://codec") as http:
        response = await http.post("/decode", json=await _encrypted_order_body(codec),
                                   headers={"authorization": f"Bearer {TOKEN}"})
    order, _ = _decoded_values(response.json())
    assert order["shipment"]["deliveryAddress"]["line1"] == "***"


async def test_encode_round_trip_and_errors(http: httpx.AsyncClient, codec: AesGcmCodec) -> None:
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"hello":"world"}')
    auth = {"authorization": f"Bearer {TOKEN}"}
    encoded = await http.post("/encode", json=json_format.MessageToDict(Payloads(payloads=[plain])), headers=auth)
    assert encoded.status_code == 200
    sealed = json_format.ParseDict(encoded.json(), Payloads()).payloads[0]
    assert sealed.metadata["encoding"] == b"binary/encrypted"
    assert (await codec.decode([sealed]))[0] == plain
    mounted = await http.post("/some/prefix/decode", json=encoded.json(), headers=auth)
    assert _decoded_values(mounted.json()) == [{"hello": "world"}]
    assert (await http.post("/decode", content=b"not json", headers=auth)).status_code == 400
    assert (await http.post("/nothing-here", json={}, headers=auth)).status_code == 404
    binary = Payload(metadata={"encoding": b"binary/plain"}, data=LEAK_PAN.encode())
    withheld = await http.post(
        "/decode", json=json_format.MessageToDict(Payloads(payloads=await codec.encode([binary]))), headers=auth
    )
    assert find_leaks("withheld", [withheld.text]) == []
    assert "withheld" in _decoded_values(withheld.json())[0]


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
    path.write_text("broken-line\n")
    with pytest.raises(ValueError, match="name:token"):
        OperatorTokens.from_file(path)


async def _cli_show(stack: MtlsStack, workflow_id: str, *extra: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    proc = await asyncio.create_subprocess_exec(
        temporal_cli(), "workflow", "show", "-w", workflow_id, "--address", stack.temporal_address,
        "--namespace", "default", "--output", "json", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_temporal_cli_reads_history_through_the_codec_server_masked(
    mtls_stack: MtlsStack, codec: AesGcmCodec
) -> None:
    rid = "req-codec-cli-0001"
    await mtls_stack.orders.submit(
        sample_order(rid, cardData=leak_card_data(), trackData=leak_track_data())
    )
    view = await mtls_stack.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome is not None and view.state.outcome.value == "DELIVERED"
    app = create_app(codec, operators=OperatorTokens({"alice": TOKEN}), cors_origins=[UI])
    async with serve(app, access_log=False) as url:
        code, decoded = await _cli_show(mtls_stack, view.workflow_id, "--codec-endpoint", url,
                                        "--codec-auth", f"Bearer {TOKEN}")
        assert code == 0, decoded
        shown = readable(decoded)
        assert MASKED_PAN in shown and "10 Main St" in shown  # decoded, and masked
        assert find_leaks("CLI via codec server", [decoded]) == []
        # Without the credential the codec server answers 401 and the CLI gets nothing decoded.
        code, refused = await _cli_show(mtls_stack, view.workflow_id, "--codec-endpoint", url,
                                        "--command-timeout", "3s")
        assert code != 0 and MASKED_PAN not in refused and find_leaks("CLI refused", [refused]) == []
