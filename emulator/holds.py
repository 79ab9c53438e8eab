"""Requests held open until a test releases them (``"hold": true`` in a failure rule).

A crash test must kill a process at a moment it can observe, not after a guessed delay:
D1 has received a request and not answered it. A held request is listed by
``GET /_emulator/holds`` (with whether D1 had already processed it, and whether its client
has gone, as a killed worker's connection does) until ``POST /_emulator/holds/release``, a
reset, or ``MAX_HOLD_S``, which keeps a forgotten hold from outliving a test run.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect, Request

MAX_HOLD_S = 600.0


@dataclass
class Hold:
    id: int
    kind: str
    issuer_id: str
    card_id: str | None
    processed: bool
    since: float = field(default_factory=time.time)
    client_gone: bool = False
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "issuerId": self.issuer_id,
            "cardId": self.card_id,
            "processed": self.processed,
            "heldForS": round(time.time() - self.since, 3),
            "clientGone": self.client_gone,
        }


class Holds:
    def __init__(self) -> None:
        self._open: dict[int, Hold] = {}
        self._ids = itertools.count(1)
        self.held = 0
        self.released = 0

    async def hold(self, request: Request, kind: str, issuer_id: str, card_id: str | None, *, processed: bool) -> None:
        """Return once released. The body is read first (unless the handler already did): only
        then does the next ``receive`` report the client's disconnect instead of more body."""
        entry = Hold(next(self._ids), kind, issuer_id, card_id, processed)
        self._open[entry.id] = entry
        self.held += 1
        try:
            await request.body()
        except RuntimeError:  # the handler has streamed it already
            pass
        except ClientDisconnect:
            entry.client_gone = True
        watch = asyncio.create_task(self._watch_disconnect(request, entry))
        try:
            await asyncio.wait_for(entry.released.wait(), MAX_HOLD_S)
        except TimeoutError:
            self.released += 1
        finally:
            watch.cancel()
            self._open.pop(entry.id, None)

    @staticmethod
    async def _watch_disconnect(request: Request, entry: Hold) -> None:
        if not entry.client_gone:
            while (await request.receive())["type"] != "http.disconnect":
                pass
        entry.client_gone = True

    def release(self, ids: list[int] | None = None) -> int:
        """Release the given holds (all when ``ids`` is None); answers how many were open."""
        chosen = [h for h in self._open.values() if ids is None or h.id in ids]
        for entry in chosen:
            entry.released.set()
            self._open.pop(entry.id, None)
        self.released += len(chosen)
        return len(chosen)

    def reset(self) -> None:
        self.release()
        self.held = self.released = 0

    def to_json(self) -> dict[str, Any]:
        return {"holds": [h.to_json() for h in self._open.values()], "held": self.held, "released": self.released}
