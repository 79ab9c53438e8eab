"""Temporal over mutual TLS, end to end, configured only by Temporal's standard variables.

The Temporal dev server speaks no TLS, so Debian's nginx terminates TLS in front of it
(tests/security/temporal_gateway.py): the local CA's gateway certificate, client
certificates of that CA required, gRPC passed on to the dev server. The worker, the
receiver and the starter CLI run as real processes whose only Temporal settings are
``TEMPORAL_ADDRESS`` (the gateway), ``TEMPORAL_NAMESPACE`` and ``TEMPORAL_TLS_CLIENT_CERT_PATH`` /
``TEMPORAL_TLS_CLIENT_KEY_PATH`` / ``TEMPORAL_TLS_SERVER_CA_CERT_PATH``, with the emulator as
D1; they complete an order. A client without a certificate, one with a certificate from
another CA and one that does not trust the gateway's CA are all refused.

D1 and the receiver run on plain HTTP on loopback here: their mutual TLS has its own tests
(test_emulator_auth.py, test_receiver_auth.py); this file is about the Temporal hop.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client

from contracts import search_attributes as sa
from emulator.app import create_app as create_emulator_app
from emulator.config import EmulatorSettings
from security.codec import generate_keys_file, load_codec
from security.pki import TemporalPki, ensure_local_pki, ensure_temporal_pki
from settings import REPO_ROOT
from stack.onboarding import ensure_issuer_keys
from temporal_client import connect
from tests.conftest import temporal_cli
from tests.security.temporal_gateway import Gateway, nginx_binary, run_gateway
from tests.support.orders import sample_order
from tests.support.servers import free_port, serve

ISSUER_ID = "TESTISS001"
PROCESSES = ("worker", "receiver", "starter")

if nginx_binary() is None and not os.environ.get("CI"):
    pytest.skip(
        "nginx is not installed (apt-get install nginx-light; .ci/run installs it, and in CI this test must run)",
        allow_module_level=True,
    )


@dataclass(frozen=True)
class GatewayStack:
    tmp: Path
    certs: TemporalPki
    rogue: TemporalPki
    gateway: Gateway
    temporal_port: int
    codec_keys: Path

    def temporal_env(self, process: str) -> dict[str, str]:
        """All a process is told about Temporal: the CLI's own variables."""
        client = self.certs.client(process)
        return {
            "TEMPORAL_ADDRESS": self.gateway.address,
            "TEMPORAL_NAMESPACE": "default",
            "TEMPORAL_TLS_CLIENT_CERT_PATH": str(client.cert),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": str(client.key),
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(self.certs.ca_cert),
        }

    def access_lines(self) -> list[str]:
        return self.gateway.access_log.read_text().splitlines()

    async def access_lines_after(self, count: int, wait_s: float = 5) -> list[str]:
        """The lines after the first ``count``: nginx writes a request's line when its stream closes."""
        for _ in range(int(wait_s * 10)):
            if len(lines := self.access_lines()) > count:
                return lines[count:]
            await asyncio.sleep(0.1)
        return []


def _without_temporal_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}


@pytest.fixture(scope="module")
def gateway_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("temporal-mtls")


@pytest.fixture(scope="module")
def gateway_stack(gateway_tmp: Path) -> Iterator[GatewayStack]:
    binary = nginx_binary()
    if binary is None:
        pytest.fail("CI is set but nginx is not installed: .ci/run installs nginx-light")
    tmp = gateway_tmp
    certs = ensure_temporal_pki(ensure_local_pki(tmp / "pki", []), PROCESSES)
    rogue = ensure_temporal_pki(ensure_local_pki(tmp / "rogue-pki", []), PROCESSES)  # same names, another CA
    temporal_port = free_port()
    log = open(tmp / "temporal.log", "wb")  # owned by the child until it exits
    temporal = subprocess.Popen(
        [temporal_cli(), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(temporal_port),
         "--log-level", "error", *sa.dev_server_args()],
        stdout=log, stderr=subprocess.STDOUT, env=_without_temporal_env(),
    )
    try:
        with run_gateway(
            binary, tmp=tmp / "gateway", listen_port=free_port(), upstream_port=temporal_port,
            server=certs.gateway_server, client_ca=certs.ca_cert,
        ) as gateway:
            yield GatewayStack(tmp, certs, rogue, gateway, temporal_port, generate_keys_file(tmp / "codec-keys.json"))
    finally:
        temporal.terminate()
        try:
            temporal.wait(timeout=20)
        except subprocess.TimeoutExpired:
            temporal.kill()
            temporal.wait()
        log.close()


@pytest_asyncio.fixture(scope="module")
async def temporal_ready(gateway_stack: GatewayStack) -> GatewayStack:
    """The dev server answers (asked directly, by the test harness only)."""
    last: Exception | None = None
    for _ in range(300):
        try:
            await Client.connect(f"127.0.0.1:{gateway_stack.temporal_port}")
            return gateway_stack
        except RuntimeError as err:
            last = err
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the Temporal dev server did not come up: {last}")


def _spawn(name: str, args: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    out = open(logs / f"{name}.log", "wb")  # owned by the child until it exits
    return subprocess.Popen(
        [sys.executable, *args], cwd=REPO_ROOT, env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=out, stderr=subprocess.STDOUT,
    )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _wait_for(
    what: str, ready: Callable[[], Awaitable[bool]], procs: list[subprocess.Popen[bytes]], logs: Path
) -> None:
    deadline = time.monotonic() + 30
    while True:
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"a process exited ({proc.args}):\n" + "\n".join(f.read_text() for f in logs.glob("*.log")))
        if await ready():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not come up:\n" + "\n".join(f.read_text() for f in logs.glob("*.log")))
        await asyncio.sleep(0.2)


async def test_worker_receiver_and_starter_complete_an_order_through_the_mtls_gateway(
    temporal_ready: GatewayStack, tmp_path: Path
) -> None:
    st = temporal_ready
    logs = tmp_path / "logs"
    logs.mkdir()
    signing_key, jwks = ensure_issuer_keys(tmp_path / "issuer", ISSUER_ID)
    receiver_port, emulator_port = free_port(), free_port()
    emulator_settings = EmulatorSettings(
        admin_api_enabled=True,  # the tests drive the sandbox (faults, scenarios, counters)
        port=emulator_port, state_dir=tmp_path / "emulator", issuer_keys_file=jwks,
        receiver_url=f"http://127.0.0.1:{receiver_port}", step_delay_ms=20,
        notify_retry_base_ms=50, notify_retry_cap_ms=500,
    )
    home = tmp_path / "home"  # no ~/.config/temporalio/temporal.toml of the machine's user
    base = {
        **_without_temporal_env(),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "TEMPORAL_TASK_QUEUE": f"mtls-{uuid.uuid4().hex[:8]}",
        "CODEC_KEYS_FILE": str(st.codec_keys),
        "D1_ISSUER_ID": ISSUER_ID,
        "D1_BANKING_URL": f"http://127.0.0.1:{emulator_port}/banking/v1",
        "D1_AUTHZ_URL": f"http://127.0.0.1:{emulator_port}/authz/v1",
        "D1_SIGNING_KEY_FILE": str(signing_key),
        "D1_ENCRYPTION_PUBLIC_KEY_FILE": str(tmp_path / "emulator" / "d1-encryption-public.jwk"),
        "D1_ALLOW_PLAINTEXT": "true",
        "RECEIVER_PORT": str(receiver_port),
        "RECEIVER_ALLOW_PLAINTEXT": "true",
        "ORDER_RECONCILE_AFTER": "PT30S",
        "ORDER_QUIET_AFTER_SHIPPED": "PT60S",
        "ORDER_CLOSE_GRACE": "PT0.5S",
    }
    rid = f"mtls-{uuid.uuid4().hex[:12]}"
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(sample_order(rid)))

    async with serve(create_emulator_app(emulator_settings), port=emulator_port):
        procs = [
            _spawn("worker", ["worker.py"], {**base, **st.temporal_env("worker")}, logs),
            _spawn("receiver", ["-m", "receiver"], {**base, **st.temporal_env("receiver")}, logs),
        ]
        try:
            async def worker_polling() -> bool:
                return "worker polling task queue" in (logs / "worker.log").read_text()

            async def receiver_healthy() -> bool:
                try:
                    async with httpx.AsyncClient(timeout=2) as http:
                        return (await http.get(f"http://127.0.0.1:{receiver_port}/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await _wait_for("the worker", worker_polling, procs, logs)
            await _wait_for("the receiver", receiver_healthy, procs, logs)
            starter = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "starter", "submit", str(order_file), "--wait",
                cwd=REPO_ROOT, env={**base, **st.temporal_env("starter"), "PYTHONUNBUFFERED": "1"},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            try:
                out, err = await asyncio.wait_for(starter.communicate(), timeout=45)
            except TimeoutError:
                starter.kill()
                await starter.wait()
                pytest.fail("the starter did not finish:\n" + "\n".join(f.read_text() for f in logs.glob("*.log")))
        finally:
            _stop(procs)
    worker_log, receiver_log = (logs / "worker.log").read_text(), (logs / "receiver.log").read_text()
    assert starter.returncode == 0, f"{out.decode()}\n{err.decode()}\n{worker_log}\n{receiver_log}"
    assert re.search(r"^outcome\s+DELIVERED", out.decode(), re.M), out.decode()

    # Each process said how it connects: the gateway, with its client certificate.
    expected = f"Temporal: address {st.gateway.address}, namespace default, TLS on, auth mTLS"
    assert expected in worker_log and expected in receiver_log, (worker_log, receiver_log)
    # Each one's calls passed the gateway with its own certificate, and reached the dev server.
    lines = st.access_lines()
    upstream = f"upstream=127.0.0.1:{st.temporal_port}"
    for process, rpc in (
        ("worker", "PollWorkflowTaskQueue"),
        ("receiver", "SignalWorkflowExecution"),
        ("starter", "StartWorkflowExecution"),
    ):
        mine = [line for line in lines if f'dn="CN=temporal-client/{process}"' in line]
        assert any(rpc in line and line.startswith("200 verify=SUCCESS") and upstream in line for line in mine), (
            process, mine[:20],
        )


async def _refused(st: GatewayStack, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    for key in list(os.environ):
        if key.startswith("TEMPORAL_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(st.tmp / "no-config"))
    for key, value in {"TEMPORAL_ADDRESS": st.gateway.address, **env}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(RuntimeError) as info:
        await connect(codec=load_codec(st.codec_keys))
    return str(info.value)


async def test_a_client_without_a_certificate_fails_the_tls_handshake(
    temporal_ready: GatewayStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = temporal_ready
    failed_handshakes = st.gateway.error_log.read_text().count("peer did not return a certificate")
    before = len(st.access_lines())
    message = await _refused(st, monkeypatch, {"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(st.certs.ca_cert)})
    # TLS 1.3: the client learns it from the gateway's alert, or, when the gateway's close
    # (a TCP reset: the client's first request is unread) overtakes the alert, as a closed
    # connection. Either way no HTTP exchange ever happened.
    assert "received fatal alert: CertificateRequired" in message or "connection closed" in message, message
    assert "400" not in message, message
    assert st.gateway.error_log.read_text().count("peer did not return a certificate") > failed_handshakes
    assert await st.access_lines_after(before, wait_s=1) == [], "a request without a certificate got past the handshake"


async def test_a_client_certificate_from_another_ca_is_refused_by_the_gateway(
    temporal_ready: GatewayStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = temporal_ready
    rogue = st.rogue.client("worker")  # CN temporal-client/worker, like the real one
    before = len(st.access_lines())
    message = await _refused(st, monkeypatch, {
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(rogue.cert),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(rogue.key),
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(st.certs.ca_cert),
    })
    # nginx lets the handshake finish and answers its own 400 instead of forwarding the call.
    assert "400 Bad Request" in message, message
    assert "client SSL certificate verify error" in st.gateway.error_log.read_text()
    new = await st.access_lines_after(before)
    assert new and all(line.startswith("400 verify=FAILED") and "upstream=-" in line for line in new), new


async def test_a_client_that_does_not_trust_the_gateway_refuses_it(
    temporal_ready: GatewayStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = temporal_ready
    client = st.certs.client("worker")
    message = await _refused(st, monkeypatch, {
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(client.cert),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(client.key),
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(st.rogue.ca_cert),  # trusts another CA only
    })
    # The other CA has the same name as ours: its signature is what fails.
    assert "InvalidCertificate(BadSignature)" in message, message
