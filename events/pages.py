"""Reading an issuer's events by sequence number: the sealed pages, then the hub's tail.

Used by the delivery activity (a backlog older than the tail) and by the feed. Pages never
change once sealed, so a process keeps the last few it read.
"""

from __future__ import annotations

from collections import OrderedDict

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from events import contract as c
from events.catalogue import Event

CACHED_PAGES = 32


class EventLog:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._pages: OrderedDict[tuple[str, int], list[Event]] = OrderedDict()

    async def page(self, issuer_id: str, page: int) -> list[Event]:
        key = (issuer_id, page)
        if key in self._pages:
            self._pages.move_to_end(key)
            return self._pages[key]
        handle = self._client.get_workflow_handle(c.page_id(issuer_id, page), result_type=c.EventPage)
        events = (await handle.result()).events
        self._pages[key] = events
        while len(self._pages) > CACHED_PAGES:
            self._pages.popitem(last=False)
        return events

    async def tail(self, issuer_id: str, after: int, limit: int = c.PAGE_SIZE) -> c.HubTail | None:
        """The hub's unsealed events after ``after``; None if the issuer has no hub (no event yet)."""
        handle = self._client.get_workflow_handle(c.hub_id(issuer_id))
        try:
            return await handle.query(c.TAIL_QUERY, c.TailRequest(after=after, limit=limit), result_type=c.HubTail)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def sealed(self, issuer_id: str, after: int, upto: int) -> list[Event]:
        """Sealed events with sequence in (after, upto], in order."""
        out: list[Event] = []
        if upto <= after:
            return out
        for page in range(c.page_of(after + 1), c.page_of(upto) + 1):
            out += [e for e in await self.page(issuer_id, page) if after < (e.sequence or 0) <= upto]
        return out
