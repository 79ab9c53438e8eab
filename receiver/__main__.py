"""``python -m receiver``: serve D1 notifications on RECEIVER_HOST:RECEIVER_PORT."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from receiver.app import create_app
from receiver.routing import NotificationRouter
from settings import ReceiverSettings, TemporalSettings
from temporal_client import connect


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    rs, ts = ReceiverSettings(), TemporalSettings()
    # Lazy: the receiver starts (and answers 503) even while Temporal is down.
    client = await connect(ts, lazy=True)
    app = create_app(NotificationRouter(client, ts.task_queue), max_body_bytes=rs.max_body_bytes)
    config = uvicorn.Config(app, host=rs.host, port=rs.port, log_level="info", timeout_graceful_shutdown=20)
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    asyncio.run(main())
