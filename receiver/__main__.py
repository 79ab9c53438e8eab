"""``python -m receiver``: serve D1 notifications on RECEIVER_HOST:RECEIVER_PORT, on uvicorn's
fast paths (httptools, uvloop: ``uvicorn[standard]``), which cut its CPU per notification
(docs/benchmarks.md)."""

from __future__ import annotations

import gc
from typing import Any

import uvicorn
import uvloop

from observability.process import configure_process, exit_without_finalizing
from receiver.activation import ActivationService
from receiver.app import create_app
from receiver.auth import ReceiverAuth
from receiver.routing import NotificationRouter
from security.redaction import install_log_redaction
from security.sealing import RECEIVER
from security.transport import receiver_server_options
from settings import ReceiverSettings, TemporalSettings
from temporal_client import connect


def freeze_startup_heap() -> None:
    """What start-up made (modules, settings, the app: ~100,000 objects) lives as long as the
    process; frozen, a full collection no longer walks it. Walking it stopped the event loop
    for 40-150 ms under load, and every acknowledgement in flight with it (docs/benchmarks.md,
    finding 5b)."""
    gc.collect()
    gc.freeze()


def server_config(app: Any, settings: ReceiverSettings, tls_options: dict[str, Any]) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=20,
        timeout_keep_alive=settings.keep_alive_s,
        **tls_options,
        access_log=settings.access_log,
        log_config=None,  # uvicorn's own lines go through our structured, redacted handler
    )


async def main() -> None:
    # Logs (TELEMETRY_LOG_*), metrics (TELEMETRY_METRICS_PORT), traces (OTEL_*): before connecting.
    configure_process("receiver")
    install_log_redaction()
    rs, ts = ReceiverSettings(), TemporalSettings()
    tls_options = receiver_server_options(rs)  # mTLS, or refuses to start without the dev flag
    auth = ReceiverAuth.from_settings(rs)
    # Lazy: the receiver starts (and answers 503) even while Temporal is down.
    client = await connect(ts, lazy=True, sealer=RECEIVER)
    router = NotificationRouter(client, ts.task_queue)
    # D1's Card Activation call, when the bank's CMS is configured (RECEIVER_CMS_*).
    activation = ActivationService.from_settings(rs, client, ts.task_queue)
    app = create_app(
        router, max_body_bytes=rs.max_body_bytes, max_operations=rs.max_operations, auth=auth, activation=activation
    )
    config = server_config(app, rs, tls_options)
    freeze_startup_heap()
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    uvloop.run(main())
    exit_without_finalizing(0)
