"""The uvicorn configuration the product's servers share (the receiver, the issuer API), free
loopback ports, an HTTP server inside the current event loop, and waiting for a server (the
emulator, which never imports the product, keeps its own copy: ``emulator/testing.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import httpx
import uvicorn

LOOPBACK = "127.0.0.1"


class Served(Protocol):
    """What a server's settings say about serving (``ReceiverSettings``, ``IssuerApiSettings``)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def keep_alive_s(self) -> int: ...
    @property
    def access_log(self) -> bool: ...


def server_config(app: Any, settings: Served, tls_options: dict[str, Any]) -> uvicorn.Config:
    """uvicorn's fast paths (httptools, uvloop: ``uvicorn[standard]``) for a long-running server.
    The keep-alive outlives a caller's lull: uvicorn's own 5 s made every pause cost a new
    mutual-TLS handshake inside the next answer (docs/benchmarks.md finding 5b)."""
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


def freeze_startup_heap() -> None:
    """What start-up made (modules, settings, the app: ~100,000 objects) lives as long as the
    process; frozen, a full collection no longer walks it. Walking it stopped the event loop
    for 40-150 ms under load, and every answer in flight with it (docs/benchmarks.md,
    finding 5b)."""
    gc.collect()
    gc.freeze()


def free_port() -> int:
    # Another process may take it before the caller binds it, which loopback tests accept.
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as s:
        # Like the servers themselves: sockets in TIME_WAIT from a previous run do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


class _EmbeddedServer(uvicorn.Server):
    """Leaves signal handling to the host process (pytest, a launcher)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serve(
    app: Any, *, port: int | None = None, host: str = LOOPBACK, startup_timeout_s: float = 10.0, **config: Any
) -> AsyncIterator[str]:
    config.setdefault("log_level", "warning")
    cfg = uvicorn.Config(app, host=host, port=port or 0, lifespan="on", timeout_graceful_shutdown=5, **config)
    server = _EmbeddedServer(cfg)

    async def run() -> None:
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn exits the process when it cannot start (port taken, ...)
            raise RuntimeError(f"server on {host}:{port} failed to start (exit code {exc.code})") from None

    task = asyncio.create_task(run(), name=f"uvicorn-{host}:{port}")
    try:
        async with asyncio.timeout(startup_timeout_s):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError(f"server on {host}:{port} stopped during startup")
                await asyncio.sleep(0.005)
        bound = server.servers[0].sockets[0].getsockname()[1]
        scheme = "https" if config.get("ssl_certfile") else "http"
        yield f"{scheme}://{host}:{bound}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=10)
        except TimeoutError:
            server.force_exit = True
            await task


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    what: str,
    *,
    within_s: float = 60.0,
    alive: Callable[[], None] | None = None,
    poll_s: float = 0.2,
) -> None:
    """``alive`` raises when a child process died meanwhile; an exception from ``check``
    counts as "not yet"."""
    deadline = time.monotonic() + within_s
    while True:
        if alive is not None:
            alive()
        try:
            if await check():
                return
        except Exception:  # noqa: S110 - not up yet; the deadline decides
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {within_s:.0f}s")
        await asyncio.sleep(poll_s)


async def wait_http(
    url: str,
    what: str,
    *,
    verify: ssl.SSLContext | bool = True,
    within_s: float = 60.0,
    alive: Callable[[], None] | None = None,
) -> None:
    async with httpx.AsyncClient(timeout=2, verify=verify) as http:

        async def up() -> bool:
            return (await http.get(url)).status_code < 500

        await wait_until(up, f"{what} at {url}", within_s=within_s, alive=alive)
