"""Run the emulator (or any ASGI app) as a real HTTP server inside the current event loop.

Tests talk to it over loopback sockets exactly as the product talks to D1, so routing,
headers, body encoding and retries are all exercised. Reused by integration tests:

    async with run_emulator(settings) as base_url:
        authz = base_url + "/authz/v1"; banking = base_url + "/banking/v1"
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp

from emulator.app import create_app
from emulator.config import EmulatorSettings, TlsOptions, uvicorn_tls_options


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the host process (pytest, a launcher)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):  # noqa: S104 - a wildcard bind is reached through loopback
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@asynccontextmanager
async def serve_app(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    tls_options: TlsOptions | None = None,
    log_level: str = "warning",
    startup_timeout_s: float = 10.0,
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` (0 = a free port); yield its base URL; stop cleanly."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
        **(tls_options or {}),
    )
    server = _EmbeddedServer(config)

    async def serve() -> None:
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn exits the process on startup failure
            raise RuntimeError(f"server failed to start (exit code {exc.code})") from None

    task = asyncio.create_task(serve(), name=f"uvicorn-{host}:{port}")
    try:
        async with asyncio.timeout(startup_timeout_s):
            while not server.started:
                if task.done():
                    task.result()  # raises the startup failure
                    raise RuntimeError("server stopped during startup")
                await asyncio.sleep(0.005)
        bound_port = server.servers[0].sockets[0].getsockname()[1]
        scheme = "https" if tls_options else "http"
        yield f"{scheme}://{_url_host(host)}:{bound_port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=10)
        except TimeoutError:
            server.force_exit = True
            await task


@asynccontextmanager
async def run_emulator(
    settings: EmulatorSettings, *, app: ASGIApp | None = None, port: int = 0, log_level: str = "warning"
) -> AsyncIterator[str]:
    """Start the emulator described by ``settings`` on a free loopback port (``settings.port``
    is ignored unless ``port`` is given) and yield its base URL, e.g. ``http://127.0.0.1:51234``.

    Pass ``app=create_app(settings)`` to keep a handle on ``app.state.emulator``.
    """
    async with serve_app(
        app if app is not None else create_app(settings),
        settings.host,
        port,
        tls_options=uvicorn_tls_options(settings),
        log_level=log_level,
    ) as base_url:
        yield base_url
