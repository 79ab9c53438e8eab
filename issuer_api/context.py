"""What every route shares: the edge and Temporal (through ``starter.api.CardOrders``), the gate
toward Temporal, the limits, the event feed. Held on the app; the service keeps no other state."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from events.feed import EventFeed
from issuer_api.auth import ApiAuth
from issuer_api.limits import TemporalGate
from settings import EventsSettings, IssuerApiSettings
from starter.api import CardOrders


@dataclass(frozen=True)
class ApiContext:
    orders: CardOrders
    settings: IssuerApiSettings
    auth: ApiAuth
    gate: TemporalGate
    # Webhook endpoints and the event feed (issuer_api/webhooks.py): the URL checks' settings,
    # and one feed, whose sealed pages it keeps, for every request.
    events_settings: EventsSettings
    feed: EventFeed


async def context(request: Request) -> ApiContext:
    # async: FastAPI runs a plain function dependency in a worker thread, a hop per request.
    ctx: ApiContext = request.app.state.context
    return ctx
