"""Reading an HTTP request body with an upper bound (receiver, token endpoint, codec server).

A declared ``Content-Length`` above the limit is refused before reading; a body streamed
without one is refused as soon as it grows past the limit, so an oversized or endless
body never fills memory.
"""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"body larger than {limit} bytes")


async def read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise BodyTooLarge(limit)
    return bytes(raw)
