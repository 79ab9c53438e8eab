"""``python -m issuer_api``: serve the issuer API on ISSUER_API_HOST:ISSUER_API_PORT over mutual TLS
(the receiver's server configuration, stack/servers.py), encrypting card data with the ``D1_*`` key and program."""

from __future__ import annotations

import uvicorn
import uvloop

from issuer_api.app import create_app
from issuer_api.auth import ApiAuth
from issuer_api.tls import server_options
from observability.process import configure_process, exit_without_finalizing
from security.redaction import install_log_redaction
from settings import IssuerApiSettings, TemporalSettings
from stack.servers import freeze_startup_heap, server_config
from starter.api import CardOrders, timing_from_settings
from starter.edge import OrderEdge
from temporal_client import connect


async def main() -> None:
    configure_process("issuer_api")
    install_log_redaction()
    settings, ts = IssuerApiSettings(), TemporalSettings()
    options = server_options(settings)
    auth = ApiAuth.from_settings(settings)
    # Lazy: the API starts (ready answers 503) while Temporal is down.
    client = await connect(ts, lazy=True, sealer="edge")
    orders = CardOrders(client, task_queue=ts.task_queue, timing=timing_from_settings(), edge=OrderEdge.from_settings())
    orders.edge.current_kid()  # D1's key must be readable before the first order, not at it
    app = create_app(orders, settings, auth=auth)
    config = server_config(app, settings, options)
    freeze_startup_heap()
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    uvloop.run(main())
    exit_without_finalizing(0)
