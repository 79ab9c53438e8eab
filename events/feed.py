"""The event feed of an issuer, for catch-up, and redelivery of one event (docs/events.md, "The feed").

Routes to build on these (issuer_api/): ``GET /v1/issuers/{issuerId}/events?after=<cursor>&types=…&limit=…``
(:meth:`EventFeed.read`) and ``POST /v1/issuers/{issuerId}/events/{eventId}/redeliver``
(:meth:`EventFeed.redeliver`). The feed returns the events the webhooks carry, in the same
order (the issuer's sequence); a cursor is the position after the last event examined.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from temporalio.client import Client, WorkflowUpdateFailedError

from events import contract as c
from events.api import refusal
from events.catalogue import Event
from events.pages import EventLog

MAX_LIMIT = 500
# A filtered read scans at most this many pages per call (the cursor moves on regardless).
SCAN_PAGES = 10


class EventNotFound(LookupError):
    pass


class FeedPage(BaseModel):
    events: list[Event]
    next_cursor: str  # pass as ``after`` for what follows
    has_more: bool


def parse_cursor(after: str | None) -> int:
    if not after:
        return 0
    if not after.isdigit():
        raise ValueError("not a cursor of this feed")
    return int(after)


class EventFeed:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._log = EventLog(client)

    async def read(
        self, issuer_id: str, after: str | None = None, types: Sequence[str] | None = None, limit: int = 100
    ) -> FeedPage:
        position = parse_cursor(after)
        limit = max(1, min(limit, MAX_LIMIT))
        wanted = set(types) if types else None
        tail = await self._log.tail(issuer_id, position, limit=2 * c.PAGE_SIZE)
        if tail is None:
            return FeedPage(events=[], next_cursor=str(position), has_more=False)
        out: list[Event] = []
        scanned = 0
        while position < tail.last_sequence and len(out) < limit and scanned < SCAN_PAGES:
            if position < tail.sealed_upto:
                batch = await self._log.page(issuer_id, c.page_of(position + 1))
                scanned += 1
            else:
                batch = tail.events
            batch = [e for e in batch if (e.sequence or 0) > position]
            if not batch:
                break
            for event in batch:
                position = event.sequence or position
                if wanted is None or event.type in wanted:
                    out.append(event)
                    if len(out) >= limit:
                        break
        return FeedPage(events=out, next_cursor=str(position), has_more=position < tail.last_sequence)

    async def find(self, issuer_id: str, event_id: str, *, pages: int = 20) -> Event:
        """An event by id: the hub's tail, then the ``pages`` most recent sealed pages."""
        tail = await self._log.tail(issuer_id, 0, limit=2 * c.PAGE_SIZE)
        if tail is not None:
            for event in tail.events:
                if event.id == event_id:
                    return event
            if tail.sealed_upto:
                last = c.page_of(tail.sealed_upto)
                for page in range(last, max(-1, last - pages), -1):
                    for event in await self._log.page(issuer_id, page):
                        if event.id == event_id:
                            return event
        raise EventNotFound(event_id)

    async def redeliver(self, issuer_id: str, event_id: str, endpoint_id: str | None = None) -> c.RedeliveryResult:
        """Send one event again (one attempt per endpoint: every enabled endpoint subscribed to
        its type, or ``endpoint_id``); the answer says where it was delivered and where not."""
        event = await self.find(issuer_id, event_id)
        handle = self._client.get_workflow_handle(c.hub_id(issuer_id))
        try:
            return await handle.execute_update(
                c.REDELIVER_UPDATE, c.Redelivery(event=event, endpoint_id=endpoint_id), result_type=c.RedeliveryResult
            )
        except WorkflowUpdateFailedError as err:
            raise refusal(err) or EventNotFound(f"{event_id}: {err.cause}") from None
