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

from emulator.state import EmulatorState
from security.pki import CertPair, LocalPki, ensure_local_pki
from security.secret_files import write_secret
from security.tls import client_ssl_context
from settings import D1ClientSettings, ReceiverSettings
from stack.local import LocalStack
from stack.onboarding import signing_key_file
from stack.spec import OAUTH_CLIENT_ID as OAUTH_CLIENT_ID  # re-exported: the tests authenticate as D1
from stack.spec import StackSpec
from starter.api import CardOrders
from tests.conftest import spec_for_tests, temporal_address
from tests.security.support import ISSUER_ID, OTHER_ISSUER_ID
from tests.support import inprocess
from tests.support.senders import with_senders

TASK_QUEUE = "security-card-orders"
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
    # The description the stack was built from (settings, environments of child processes).
    local: LocalStack

    @property
    def temporal_address(self) -> str:
        return self.env.client.service_client.config.target_host

    def tls(self, pair: CertPair | None, *, ca: Path | None = None) -> ssl.SSLContext:
        return client_ssl_context(
            ca_file=ca or self.pki.ca_cert, cert_file=pair.cert if pair else None, key_file=pair.key if pair else None
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
def mtls_spec(security_tmp: Path, codec_keys_file: Path) -> StackSpec:
    """The production-like stack: mutual TLS on both D1 hops, outbound OAuth, two tenants,
    the receiver's operator route; its secrets are the test values above."""
    spec = spec_for_tests(
        security_tmp,
        transport="mtls",
        other_issuers=(OTHER_ISSUER_ID,),
        task_queue=TASK_QUEUE,
        codec_keys_file=codec_keys_file,
        receiver_operators=True,
    )
    # Written before the stack is created, which keeps existing secrets.
    write_secret(spec.paths.oauth_client_secret, OAUTH_SECRET)
    write_secret(spec.paths.receiver_operators, f"ops:{RECEIVER_OPERATOR_TOKEN}")
    return spec


@pytest.fixture(scope="session")
def pki(mtls_spec: StackSpec) -> LocalPki:
    local = mtls_spec.ensure()
    assert local.pki is not None
    return local.pki


@pytest.fixture(scope="session")
def rogue_pki(security_tmp: Path) -> LocalPki:
    """Same names, another CA: nothing it signed may be accepted."""
    return ensure_local_pki(security_tmp / "rogue-pki", [ISSUER_ID, OTHER_ISSUER_ID])


@pytest_asyncio.fixture(scope="session")
async def mtls_stack(
    temporal_env: WorkflowEnvironment, mtls_spec: StackSpec, pki: LocalPki, rogue_pki: LocalPki
) -> AsyncIterator[MtlsStack]:
    base = temporal_env.client
    local = mtls_spec.replace(temporal_address=temporal_address(base), namespace=base.namespace).ensure()
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    client = with_senders(await local.connect(interceptors=[TracingInterceptor(provider.get_tracer("tests.security"))]))
    async with inprocess.running_product(local, client) as p:
        assert p.emulator_url.startswith("https://")
        yield MtlsStack(
            client=client,
            env=temporal_env,
            orders=CardOrders(client, task_queue=TASK_QUEUE, timing=local.order_timing(), edge=local.order_edge()),
            pki=pki,
            rogue_pki=rogue_pki,
            emulator_url=p.emulator_url,
            receiver_url=p.receiver_url,
            emulator=p.emulator,
            spans=spans,
            d1_settings=p.d1_settings,
            receiver_settings=p.receiver_settings,
            issuer_key=jwk.JWK.from_json(local.paths.signing_key.read_text()),
            other_issuer_key=jwk.JWK.from_json(signing_key_file(local.paths.issuer_dir, OTHER_ISSUER_ID).read_text()),
            codec_keys_file=local.paths.codec_keys,
            tmp=local.paths.state_dir,
            local=local,
        )
