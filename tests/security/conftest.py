"""The mutual-TLS stack for the security tests, on the session's Temporal dev server.

Everything the shared ``stack`` fixture runs, but the way production does: the worker
calls the emulator with the issuer's client certificate and verifies the emulator's
server certificate; the emulator calls the receiver with the tenant's D1 notifier
certificate, after fetching an outbound-OAuth token from the receiver; both servers
require client certificates from the local CA and check their identity. The Temporal
client carries OpenTelemetry's TracingInterceptor into an in-memory exporter, so tests
can read every span.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from jwcrypto import jwk
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment

from emulator.app import create_app as create_emulator_app
from emulator.config import EmulatorSettings
from emulator.state import EmulatorState
from emulator.testing import run_emulator
from receiver.app import create_app as create_receiver_app
from receiver.auth import ReceiverAuth
from receiver.routing import NotificationRouter
from security.pki import CertPair, LocalPki, ensure_local_pki
from security.secret_files import write_secret
from security.tls import client_ssl_context
from security.transport import receiver_server_options
from settings import D1ClientSettings, ReceiverSettings
from stack.onboarding import ensure_issuer_keys
from starter.api import CardOrders
from starter.edge import OrderEdge
from tests.conftest import fast_timing
from tests.security.support import ISSUER_ID, OTHER_ISSUER_ID
from tests.support.servers import free_port, serve
from worker import build_worker, d1_activities

TASK_QUEUE = "security-card-orders"
OAUTH_CLIENT_ID = "d1-outbound"
OAUTH_SECRET = "local-test-secret-0123456789abcdef"  # test value, written to a 0600 file
RECEIVER_OPERATOR_TOKEN = "receiver-operator-test-token-0123456789"  # test value, 0600 file


@dataclass
class MtlsStack:
    client: Client
    env: WorkflowEnvironment
    orders: CardOrders
    pki: LocalPki
    rogue_pki: LocalPki
    emulator_url: str
    receiver_url: str
    emulator: EmulatorState
    spans: InMemorySpanExporter
    d1_settings: D1ClientSettings
    receiver_settings: ReceiverSettings
    issuer_key: jwk.JWK
    other_issuer_key: jwk.JWK
    codec_keys_file: Path
    tmp: Path

    @property
    def temporal_address(self) -> str:
        return self.env.client.service_client.config.target_host

    def tls(self, pair: CertPair | None, *, ca: Path | None = None) -> ssl.SSLContext:
        return client_ssl_context(
            ca_file=ca or self.pki.ca_cert,
            cert_file=pair.cert if pair else None,
            key_file=pair.key if pair else None,
        )

    def http(self, pair: CertPair | None, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=self.tls(pair), timeout=10, **kw)

    async def emulator_admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async with self.http(self.pki.issuer_client(ISSUER_ID), base_url=self.emulator_url) as http:
            return await http.request(method, path, **kw)


@pytest.fixture(scope="session")
def security_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("security")


@pytest.fixture(scope="session")
def pki(security_tmp: Path) -> LocalPki:
    return ensure_local_pki(security_tmp / "pki", [ISSUER_ID, OTHER_ISSUER_ID])


@pytest.fixture(scope="session")
def rogue_pki(security_tmp: Path) -> LocalPki:
    """Same names, another CA: nothing it signed may be accepted."""
    return ensure_local_pki(security_tmp / "rogue-pki", [ISSUER_ID, OTHER_ISSUER_ID])


@pytest_asyncio.fixture(scope="session")
async def mtls_stack(
    temporal_env: WorkflowEnvironment, codec_keys_file: Path, pki: LocalPki, rogue_pki: LocalPki, security_tmp: Path
) -> AsyncIterator[MtlsStack]:
    tmp = security_tmp / "stack"
    signing_key, _ = ensure_issuer_keys(tmp / "issuer", ISSUER_ID)
    issuer_key = jwk.JWK.from_json(signing_key.read_text())
    other_key = jwk.JWK.generate(kty="EC", crv="P-256", kid="other-issuer-sig")
    jwks = tmp / "issuer-keys.json"
    keys = []
    for key, issuer in ((issuer_key, ISSUER_ID), (other_key, OTHER_ISSUER_ID)):
        public = key.export_public(as_dict=True)
        public["issuerId"] = issuer
        keys.append(public)
    jwks.write_text(json.dumps({"keys": keys}))
    oauth_secret_file = write_secret(tmp / "secrets" / "oauth-client-secret", OAUTH_SECRET)
    operators_file = write_secret(tmp / "secrets" / "receiver-operators", f"ops:{RECEIVER_OPERATOR_TOKEN}")

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    base = temporal_env.client
    client = await Client.connect(
        base.service_client.config.target_host,
        namespace=base.namespace,
        data_converter=base.data_converter,
        interceptors=[TracingInterceptor(provider.get_tracer("tests.security"))],
    )

    receiver_port = free_port()
    receiver_url = f"https://127.0.0.1:{receiver_port}"
    receiver_settings = ReceiverSettings(
        port=receiver_port,
        tls_cert_file=pki.receiver_server.cert,
        tls_key_file=pki.receiver_server.key,
        tls_client_ca_file=pki.ca_cert,
        oauth_enabled=True,
        oauth_client_id=OAUTH_CLIENT_ID,
        oauth_client_secret_file=oauth_secret_file,
        operator_tokens_file=operators_file,
    )
    notifier = pki.notifier_client_template
    emu_settings = EmulatorSettings(
        admin_api_enabled=True,  # the tests drive the sandbox (faults, scenarios, counters)
        state_dir=tmp / "emulator",
        issuer_keys_file=jwks,
        receiver_url=receiver_url,
        step_delay_ms=20,
        notify_retry_base_ms=50,
        notify_retry_cap_ms=500,
        tls_cert_file=pki.emulator_server.cert,
        tls_key_file=pki.emulator_server.key,
        tls_ca_file=pki.ca_cert,
        notify_client_cert_file=str(notifier.cert),
        notify_client_key_file=str(notifier.key),
        notify_ca_file=pki.ca_cert,
        outbound_oauth_token_url=f"{receiver_url}/oauth2/token",
        outbound_oauth_client_id=OAUTH_CLIENT_ID,
        outbound_oauth_client_secret_file=oauth_secret_file,
    )
    emulator_app = create_emulator_app(emu_settings)
    router = NotificationRouter(client, TASK_QUEUE)
    receiver_app = create_receiver_app(router, auth=ReceiverAuth.from_settings(receiver_settings))
    async with (
        serve(receiver_app, port=receiver_port, **receiver_server_options(receiver_settings)),
        run_emulator(emu_settings, app=emulator_app) as emulator_url,
    ):
        assert emulator_url.startswith("https://")
        client_cert = pki.issuer_client(ISSUER_ID)
        d1_settings = D1ClientSettings(
            issuer_id=ISSUER_ID,
            banking_url=f"{emulator_url}/banking/v1",
            authz_url=f"{emulator_url}/authz/v1",
            signing_key_file=signing_key,
            encryption_public_key_file=tmp / "emulator" / "d1-encryption-public.jwk",
            tls_client_cert_file=client_cert.cert,
            tls_client_key_file=client_cert.key,
            tls_ca_file=pki.ca_cert,
        )
        async with d1_activities(d1_settings) as acts:
            async with build_worker(client, TASK_QUEUE, acts):
                yield MtlsStack(
                    client=client,
                    env=temporal_env,
                    orders=CardOrders(
                        client, task_queue=TASK_QUEUE, timing=fast_timing(),
                        edge=OrderEdge.from_settings(d1_settings),
                    ),
                    pki=pki,
                    rogue_pki=rogue_pki,
                    emulator_url=emulator_url,
                    receiver_url=receiver_url,
                    emulator=emulator_app.state.emulator,
                    spans=spans,
                    d1_settings=d1_settings,
                    receiver_settings=receiver_settings,
                    issuer_key=issuer_key,
                    other_issuer_key=other_key,
                    codec_keys_file=codec_keys_file,
                    tmp=tmp,
                )
