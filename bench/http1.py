"""A minimal keep-alive HTTP/1.1 POST client for the load generator.

The driver plays D1 and must not compete with the product for the machine's two cores:
httpx costs about a millisecond of CPU per request and its connection pool gets slower
with every connection it holds (the first scale runs spent more CPU in the driver than in
the receiver). This client writes the request bytes and reads the status line, headers and
a ``Content-Length`` (or chunked) body on a connection of its own: one per sender lane,
so there is no pool to manage.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit


class Http1Connection:
    """One persistent connection; ``post`` returns the status code. Not shared between tasks."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._path = parts.path or "/"
        self._ssl = ssl_context if parts.scheme == "https" else None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._head = (
            f"POST {self._path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port, ssl=self._ssl)
        return self._reader, self._writer

    async def connect(self) -> None:
        await self._connect()

    async def post(self, body: bytes, extra_headers: bytes = b"") -> int:
        """POST ``body``; ``extra_headers`` are complete ``Name: value\\r\\n`` lines."""
        try:
            return await self._post(body, extra_headers)
        except (ConnectionError, asyncio.IncompleteReadError):
            await self.close()  # the server closed an idle keep-alive connection: once more
            return await self._post(body, extra_headers)

    async def _post(self, body: bytes, extra_headers: bytes) -> int:
        reader, writer = await self._connect()
        writer.write(self._head + str(len(body)).encode() + b"\r\n" + extra_headers + b"\r\n" + body)
        await writer.drain()
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            while (size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)) > 0:
                await reader.readexactly(size + 2)
            await reader.readuntil(b"\r\n")
        elif length:
            await reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass
        self._reader = self._writer = None
