"""make run's Temporal dev server, started with make run's own stack description (on free
ports): neither its UI's public settings nor its command line carry a credential, and the
UI's codec endpoint reaches the codec server, configured by make run's settings, in its
loopback development mode (as the browser calls it)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from security.codec import load_codec, load_ring
from security.codec_auth import CodecAuth
from security.codec_server import create_app
from security.operator_tokens import OperatorTokens, ensure_operator_token
from stack.__main__ import make_run_spec
from stack.servers import serve
from stack.spec import Ports
from tests.conftest import temporal_cli
from tests.security.support import LEAK_PAN, find_leaks, leak_card_data
from tests.support.orders import sample_order
from tests.support.validation import validate_order


@pytest_asyncio.fixture
async def dev_server(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    stack = make_run_spec(tmp_path, Ports.free(metrics=True)).ensure()
    token = ensure_operator_token(stack.paths.codec_operators)  # the one make run wrote
    argv = stack.dev_server_argv(temporal_cli(), ui=True, log_level="warn")
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=stack.env("temporal")
    )
    try:
        yield {
            "proc": proc,
            "ui": f"http://127.0.0.1:{stack.ports.temporal_ui}",
            "stack": stack,
            "codec_url": stack.codec_server_url,
            "token": token,
        }
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _settings(ui: str, proc: asyncio.subprocess.Process) -> httpx.Response:
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(timeout=3) as http:
        while True:
            assert proc.returncode is None, "the dev server exited"
            try:
                response = await http.get(f"{ui}/api/v1/settings")  # unauthenticated, as anyone can
                if response.status_code == 200:
                    return response
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the dev server's UI did not come up"
            await asyncio.sleep(0.3)


async def test_dev_server_settings_and_command_line_carry_no_credential(dev_server: dict[str, Any]) -> None:
    proc, token = dev_server["proc"], dev_server["token"]
    response = await _settings(dev_server["ui"], proc)
    settings = response.json()
    endpoint = settings["Codec"]["Endpoint"]
    assert endpoint.rstrip("/") == dev_server["codec_url"]  # the UI is pointed at the codec server ...
    assert token not in response.text  # ... with no credential anywhere in its public settings
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
    assert "start-dev" in cmdline and dev_server["codec_url"] in cmdline
    assert token not in cmdline

    # What the browser then does: POST <endpoint>/decode from the UI's origin, no credential.
    # The codec server as make run configures it (its settings): dev loopback trust + the CLI's static token.
    settings = dev_server["stack"].codec_server_settings()
    codec = load_codec(dev_server["stack"].codec_settings().keys_file)
    order = validate_order(sample_order("req-make-run-1", cardData=leak_card_data()))
    sealed = await codec.encode(pydantic_data_converter.payload_converter.to_payloads([order]))
    body = json_format.MessageToDict(Payloads(payloads=sealed))
    app = create_app(codec, auth=CodecAuth.from_settings(settings), cors_origins=settings.cors_origins)
    # On a free port, not settings.port: between the fixture's choice and this bind another test's
    # socket once took it (CI). The UI's endpoint is checked above; the server is the same app.
    async with serve(app, access_log=False) as served, httpx.AsyncClient(timeout=10) as http:
        endpoint = served
        decoded = await http.post(f"{endpoint}/decode", json=body, headers={"origin": dev_server["ui"]})
        assert decoded.status_code == 200, decoded.text
        shown = json.loads(json_format.ParseDict(decoded.json(), Payloads()).payloads[0].data)
        assert shown["cardData"]["pan"] == LEAK_PAN[:4] + "********" + LEAK_PAN[-4:]
        assert shown["shipment"]["deliveryAddress"]["line1"] == "***"
        assert find_leaks("dev UI decode", [decoded.text]) == []
        # The CLI's way in is the header, as the printed hint sets it (TEMPORAL_CODEC_AUTH).
        cli = await http.post(f"{endpoint}/decode", json=body, headers={"authorization": f"Bearer {token}"})
        assert cli.status_code == 200
        # Decoding is all it does: nobody, not even the local user, has it seal a message.
        for headers in ({"origin": dev_server["ui"]}, {"authorization": f"Bearer {token}"}):
            forged = await http.post(f"{endpoint}/encode", json=body, headers=headers)
            assert forged.status_code == 404 and "binary/encrypted" not in forged.text


def test_make_run_gives_each_process_the_keys_of_its_role(tmp_path: Path) -> None:
    """make run's processes as it starts them: the receiver seals as the receiver only, the
    workers and the codec server hold the authority ring, the CLI names its development
    operator, and the demo's two operators and the edge have files of their own."""
    stack = make_run_spec(tmp_path, Ports.free(metrics=True)).ensure()
    keys = {
        kind: load_ring(Path(stack.env(kind)["CODEC_KEYS_FILE"])) for kind in ("worker", "receiver", "codec-server")
    }
    assert keys["worker"].seal_as == "worker" and set(keys["worker"].active) == {
        "edge",
        "receiver",
        "worker",
        "operator",
        "reader",
    }
    assert keys["codec-server"] == keys["worker"]
    assert keys["receiver"].seal_as == "receiver" and len(keys["receiver"].keys) == 1
    assert stack.env("starter")["CODEC_DEV_OPERATOR"] == "alice"
    operators = sorted(p.name for p in stack.paths.operators_dir.iterdir())
    assert operators == ["alice.json", "bob.json"]
    assert load_ring(stack.paths.issued_keys("edge")).seal_as == "edge"
    # The CLI's codec token may read, and nothing more.
    assert OperatorTokens.from_file(stack.paths.codec_operators).roles("local-operator") == {"card-orders-read"}
