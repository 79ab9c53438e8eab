"""A round-robin TCP balancer on loopback: one address in front of several replicas of a server
(receivers behind the emulator's single notification URL, in the replica test and the replica
benchmark). Connection by connection, like a layer-4 load balancer; a replica that refuses the
connection (killed) is skipped, so a caller's retry lands on a live one. TLS passes through."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from stack.servers import LOOPBACK


@dataclass
class Backend:
    port: int
    connections: int = 0  # accepted and relayed, over the balancer's life
    open: int = 0  # relayed right now


@dataclass
class Balancer:
    backends: list[Backend]
    refused: int = 0  # connections no replica took
    _turn: itertools.cycle[int] = field(init=False)

    def __post_init__(self) -> None:
        self._turn = itertools.cycle(range(len(self.backends)))

    def route(self, ports: Sequence[int]) -> None:
        """From now on, new connections go to ``ports`` (relayed ones stay where they are)."""
        self.backends = [Backend(p) for p in ports]
        self._turn = itertools.cycle(range(len(self.backends)))

    def backend(self, port: int) -> Backend:
        return next(b for b in self.backends if b.port == port)

    async def _connect(self) -> tuple[Backend, asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.backends)):
            backend = self.backends[next(self._turn)]
            try:
                reader, writer = await asyncio.open_connection(LOOPBACK, backend.port)
            except OSError:
                continue
            return backend, reader, writer
        return None

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            await self._relay(client_r, client_w)
        except asyncio.CancelledError:
            # The balancer closing (its loop ending): asyncio's server would log a cancelled
            # connection task as an error; the connection is simply cut.
            pass

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:
            self.refused += 1
            client_w.close()
            return
        backend, server_r, server_w = upstream
        backend.connections += 1
        backend.open += 1
        pipes = [asyncio.create_task(_pipe(client_r, server_w)), asyncio.create_task(_pipe(server_r, client_w))]
        try:
            # Either side closing or failing (a killed replica resets) ends both.
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            backend.open -= 1
            for writer in (client_w, server_w):
                writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


@asynccontextmanager
async def balance(port: int, backends: Sequence[int]) -> AsyncIterator[Balancer]:
    """Listen on ``port`` (loopback) and spread its connections over ``backends`` in turn."""
    balancer = Balancer([Backend(p) for p in backends])
    server = await asyncio.start_server(balancer.handle, LOOPBACK, port, reuse_address=True)
    try:
        yield balancer
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2)
