"""Temporal over mutual TLS, end to end, configured only by Temporal's standard variables.

The Temporal dev server speaks no TLS, so Debian's nginx terminates TLS in front of it
(tests/security/temporal_gateway.py): the local CA's gateway certificate, client
certificates of that CA required, gRPC passed on to the dev server. The worker, the
receiver and the starter CLI run as real processes whose only Temporal settings are
``TEMPORAL_ADDRESS`` (the gateway), ``TEMPORAL_NAMESPACE`` and ``TEMPORAL_TLS_CLIENT_CERT_PATH`` /
``TEMPORAL_TLS_CLIENT_KEY_PATH`` / ``TEMPORAL_TLS_SERVER_CA_CERT_PATH`` (and the stack's
profile file with the same address: ``StackSpec.temporal_tls``), with the emulator as D1;
they complete an order. A client without a certificate, one with a certificate from
another CA and one that does not trust the gateway's CA are all refused.

D1 and the receiver run on plain HTTP on loopback here: their mutual TLS has its own tests
(test_emulator_auth.py, test_receiver_auth.py); this file is about the Temporal hop.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client

from security.codec import load_codec
from security.pki import TemporalPki, ensure_local_pki
from settings import REPO_ROOT
from stack.local import LocalStack
from stack.processes import Supervisor
from stack.servers import free_port, wait_http, wait_until
from stack.spec import TEMPORAL_CLIENTS, Ports, StackSpec
from temporal_client import connect
from tests.conftest import spec_for_tests, temporal_cli
from tests.security.temporal_gateway import Gateway, nginx_binary, run_gateway
from tests.support.inprocess import serve_emulator
from tests.support.orders import sample_order
from tests.support.temporal_pki import ensure_temporal_pki

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
    # The stack's processes reach Temporal through the gateway, each with its own certificate.
    spec: StackSpec

    def access_lines(self) -> list[str]:
        return self.gateway.access_log.read_text().splitlines()

    async def access_lines_after(self, count: int, wait_s: float = 5) -> list[str]:
        """The lines after the first ``count``: nginx writes a request's line when its stream closes."""
        for _ in range(int(wait_s * 10)):
            if len(lines := self.access_lines()) > count:
                return lines[count:]
            await asyncio.sleep(0.1)
        return []


@pytest.fixture(scope="module")
def gateway_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("temporal-mtls")


@pytest.fixture(scope="module")
def gateway_stack(gateway_tmp: Path) -> Iterator[GatewayStack]:
    binary = nginx_binary()
    if binary is None:
        pytest.fail("CI is set but nginx is not installed: .ci/run installs nginx-light")
    tmp = gateway_tmp
    certs = ensure_temporal_pki(ensure_local_pki(tmp / "pki", []), TEMPORAL_CLIENTS)
    rogue = ensure_temporal_pki(ensure_local_pki(tmp / "rogue-pki", []), TEMPORAL_CLIENTS)  # same names, another CA
    # The dev server of a plain stack (D1 and the receiver on plain HTTP: their mTLS has its own tests).
    dev = spec_for_tests(tmp / "dev-server").ensure()
    sup = Supervisor(tmp)
    sup.start("temporal", dev.dev_server_argv(temporal_cli(), persist=False), dev.env("temporal"))
    try:
        with run_gateway(
            binary,
            tmp=tmp / "gateway",
            listen_port=free_port(),
            upstream_port=dev.ports.temporal,
            server=certs.gateway_server,
            client_ca=certs.ca_cert,
        ) as gateway:
            spec = dev.spec.replace(temporal_address=gateway.address, temporal_tls=certs)
            yield GatewayStack(tmp, certs, rogue, gateway, dev.ports.temporal, dev.paths.codec_keys, spec)
    finally:
        sup.stop_all(timeout=20)


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


def _logs(logs: Path) -> str:
    return "\n".join(f.read_text() for f in logs.glob("*.log"))


async def test_worker_receiver_and_starter_complete_an_order_through_the_mtls_gateway(
    temporal_ready: GatewayStack, tmp_path: Path
) -> None:
    st = temporal_ready
    local: LocalStack = st.spec.replace(
        state_dir=tmp_path, ports=Ports.free(), task_queue=f"mtls-{uuid.uuid4().hex[:8]}"
    ).ensure()
    rid = f"mtls-{uuid.uuid4().hex[:12]}"
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(sample_order(rid)))

    sup = Supervisor(tmp_path / "logs")
    logs = sup.log_dir
    async with serve_emulator(local):
        sup.start("worker", local.argv("worker"), local.env("worker"))
        sup.start("receiver", local.argv("receiver"), local.env("receiver"))
        try:

            async def worker_polling() -> bool:
                return "worker polling task queue" in sup.log("worker").read_text()

            try:
                await wait_until(worker_polling, "the worker", within_s=30, alive=sup.check_alive)
                await wait_http(f"{local.receiver_url}/healthz", "the receiver", within_s=30, alive=sup.check_alive)
            except RuntimeError as err:
                pytest.fail(f"{err}:\n{_logs(logs)}")
            starter = await asyncio.create_subprocess_exec(
                *local.argv("starter"),
                "submit",
                str(order_file),
                "--wait",
                cwd=REPO_ROOT,
                env=local.env("starter"),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                out, err = await asyncio.wait_for(starter.communicate(), timeout=45)
            except TimeoutError:
                starter.kill()
                await starter.wait()
                pytest.fail(f"the starter did not finish:\n{_logs(logs)}")
        finally:
            sup.stop_all(timeout=20)
    worker_log, receiver_log = sup.log("worker").read_text(), sup.log("receiver").read_text()
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
            process,
            mine[:20],
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
    message = await _refused(
        st,
        monkeypatch,
        {
            "TEMPORAL_TLS_CLIENT_CERT_PATH": str(rogue.cert),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": str(rogue.key),
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(st.certs.ca_cert),
        },
    )
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
    message = await _refused(
        st,
        monkeypatch,
        {
            "TEMPORAL_TLS_CLIENT_CERT_PATH": str(client.cert),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": str(client.key),
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(st.rogue.ca_cert),  # trusts another CA only
        },
    )
    # The other CA has the same name as ours: its signature is what fails.
    assert "InvalidCertificate(BadSignature)" in message, message
