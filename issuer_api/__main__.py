"""``python -m issuer_api``: serve the issuer API on ISSUER_API_HOST:ISSUER_API_PORT over mutual TLS
(uvicorn's fast paths, as the receiver), encrypting card data with the ``D1_*`` key and program."""

from __future__ import annotations

import logging

import uvicorn
import uvloop

from issuer_api.app import create_app
from issuer_api.auth import ApiAuth
from observability.process import configure_process, exit_without_finalizing
from security.redaction import install_log_redaction
from security.tls import uvicorn_server_options
from security.transport import InsecureConfiguration, loud
from settings import IssuerApiSettings, TemporalSettings
from starter.api import CardOrders, timing_from_settings
from starter.edge import OrderEdge
from temporal_client import connect

log = logging.getLogger("issuer_api")


def server_options(settings: IssuerApiSettings) -> dict[str, object]:
    cert, key, ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    if cert is not None and key is not None and ca is not None:
        return uvicorn_server_options(cert, key, ca)
    if cert is not None or key is not None or ca is not None:
        raise InsecureConfiguration(
            "the issuer API needs ISSUER_API_TLS_CERT_FILE, ISSUER_API_TLS_KEY_FILE and "
            "ISSUER_API_TLS_CLIENT_CA_FILE together"
        )
    if not settings.allow_plaintext:
        raise InsecureConfiguration(
            "the issuer API receives card data: it serves mutual TLS only (set ISSUER_API_TLS_CERT_FILE, "
            "ISSUER_API_TLS_KEY_FILE, ISSUER_API_TLS_CLIENT_CA_FILE, or ISSUER_API_ALLOW_PLAINTEXT=true for "
            "local development)"
        )
    loud(
        "DEVELOPMENT MODE (ISSUER_API_ALLOW_PLAINTEXT=true): the issuer API serves plain HTTP and card data "
        "crosses the network in clear. Never use this outside a development machine.",
        log,
    )
    return {}


async def main() -> None:
    configure_process("issuer_api")
    install_log_redaction()
    settings, ts = IssuerApiSettings(), TemporalSettings()
    options = server_options(settings)
    auth = ApiAuth.from_settings(settings)
    # Lazy: the API starts (ready answers 503) while Temporal is down.
    client = await connect(ts, lazy=True)
    orders = CardOrders(client, task_queue=ts.task_queue, timing=timing_from_settings(), edge=OrderEdge.from_settings())
    orders.edge.current_kid()  # D1's key must be readable before the first order, not at it
    app = create_app(orders, settings, auth=auth)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=20,
        access_log=settings.access_log,
        log_config=None,
        **options,  # type: ignore[arg-type]
    )
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    uvloop.run(main())
    exit_without_finalizing(0)
