"""``python -m receiver``: serve D1 notifications on RECEIVER_HOST:RECEIVER_PORT, on uvicorn's
fast paths (httptools, uvloop: ``uvicorn[standard]``), which cut its CPU per notification
(docs/benchmarks.md)."""

from __future__ import annotations

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
from stack.servers import freeze_startup_heap, server_config
from temporal_client import connect


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
