"""D1's Card Activation call is served behind the notifications' mutual TLS and OAuth
(receiver/activation.py): D1 with the tenant's certificate and token reaches the bank's CMS
(over HTTPS, checked against its CA, with the bank's own token); anyone else is refused
before the bank is asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from d1.assumptions import ACTIVATION_PATH
from emulator.activation import Activator
from receiver.activation import ActivationService
from receiver.app import create_app
from receiver.auth import ReceiverAuth
from receiver.routing import NotificationRouter
from security.transport import receiver_server_options
from stack.bank_cms import BankCms, serving
from stack.servers import serve
from tests.conftest import TASK_QUEUE, new_request_id
from tests.security.conftest import MtlsStack
from tests.security.support import ISSUER_ID, OTHER_ISSUER_ID

pytestmark = pytest.mark.asyncio

CMS_TOKEN = "bank-cms-token"


@dataclass
class Served:
    url: str
    cms: BankCms


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def activation_receiver(mtls_stack: MtlsStack) -> AsyncIterator[Served]:
    """The stack's receiver settings (mTLS, OAuth) with a bank CMS behind HTTPS."""
    pki = mtls_stack.pki
    token_file = mtls_stack.tmp / "cms-token"
    token_file.write_text(CMS_TOKEN, encoding="utf-8")
    token_file.chmod(0o600)
    cms = BankCms(token=CMS_TOKEN)
    server = pki.emulator_server  # a server certificate of the local CA for 127.0.0.1
    async with serving(cms, ssl_certfile=str(server.cert), ssl_keyfile=str(server.key)) as cms_url:
        assert cms_url.startswith("https://")
        settings = mtls_stack.receiver_settings.model_copy(
            update={
                "cms_activation_url": cms.url_template(cms_url),
                "cms_token_file": token_file,
                "cms_ca_file": pki.ca_cert,
            }
        )
        router = NotificationRouter(mtls_stack.client, TASK_QUEUE)
        activation = ActivationService.from_settings(settings, router.client, router.task_queue)
        assert activation is not None
        app = create_app(router, auth=ReceiverAuth.from_settings(settings), activation=activation)
        async with serve(app, **receiver_server_options(settings)) as url:
            yield Served(url, cms)
        await activation.aclose()


async def test_d1_with_its_certificate_and_token_activates(mtls_stack: MtlsStack, activation_receiver: Served) -> None:
    card = f"card-{new_request_id('tls')}"
    settings = mtls_stack.local.emulator_settings()
    oauth = {"outbound_oauth_token_url": f"{activation_receiver.url}/oauth2/token"}
    activator = Activator(settings.model_copy(update={"receiver_url": activation_receiver.url, **oauth}))
    await activator.start()
    try:
        call = await activator.activate(ISSUER_ID, card, trigger="test", max_attempts=1)
    finally:
        await activator.stop()
    assert call.attempts == [204], call.answer
    assert (ISSUER_ID, card) in activation_receiver.cms.activated


async def test_without_a_token_or_as_another_tenant_the_bank_is_never_asked(
    mtls_stack: MtlsStack, activation_receiver: Served
) -> None:
    card = f"card-{new_request_id('nope')}"
    path = ACTIVATION_PATH.replace("{issuerId}", ISSUER_ID).replace("{cardId}", card)
    async with mtls_stack.http(mtls_stack.pki.notifier_client(ISSUER_ID)) as http:
        no_token = await http.post(f"{activation_receiver.url}{path}")
    async with mtls_stack.http(mtls_stack.pki.notifier_client(OTHER_ISSUER_ID)) as http:
        other_tenant = await http.post(f"{activation_receiver.url}{path}")
    assert no_token.status_code == 401
    assert other_tenant.status_code == 403
    assert not any(c["cardId"] == card for c in activation_receiver.cms.calls)
