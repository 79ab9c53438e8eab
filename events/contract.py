"""The event hub's contract: names, ids and the models of its signal, updates, queries and activities.

Pure (pydantic only): the workflows import it through the sandbox, the issuer-side
functions (events/api.py, events/feed.py) and the activities use the same names. The hub's
input, its signal and its updates are messages (contracts/messages.py: sealed by their
sender, of their own kind, checked by the hub against the roles of workflows/messages.py);
results, queries and activity payloads are plain models, sealed for readers.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts import messages
from contracts.messages import Message
from events.catalogue import Event

HUB_WORKFLOW_TYPE = "EventHubWorkflow"
PAGE_WORKFLOW_TYPE = "EventPageWorkflow"
# Signal (sent by the worker's emit activity, role "worker" only): EventBatch.
EVENTS_SIGNAL = "events"
# Updates (sent by the issuer API / the Python API, role "edge" only; refused from anyone else).
CREATE_ENDPOINT_UPDATE = "create_endpoint"  # EndpointSpec -> EndpointCreated
UPDATE_ENDPOINT_UPDATE = "update_endpoint"  # EndpointChange -> EndpointView
ROTATE_SECRET_UPDATE = "rotate_secret"  # noqa: S105 - a name. SecretRotation -> EndpointCreated
REDELIVER_UPDATE = "redeliver"  # Redelivery -> RedeliveryResult
# Queries.
ENDPOINTS_QUERY = "endpoints"  # -> list[EndpointView]
TAIL_QUERY = "tail"  # TailRequest -> HubTail
# On a card order: the events it handed to its issuer's hub so far (-> list[SentEvent]).
EVENTS_SENT_QUERY = "events_sent"
# Activities.
EMIT_EVENTS = "events.emit"  # local activity of the card workflows: EmitInput -> str (emitted(); "": events off)
DELIVER_EVENTS = "events.deliver"  # DeliverInput -> DeliverResult
# Local activity of the activation record: the order's workflow id -> its masked PAN (or None).
ORDER_MASKED_PAN = "events.order_masked_pan"
# Events per sealed page (a closed EventPageWorkflow): page n holds sequences n*PAGE_SIZE+1 .. (n+1)*PAGE_SIZE.
# Fixed: the page of a sequence number is computed, never stored.
PAGE_SIZE = 500


def hub_id(issuer_id: str) -> str:
    return f"event-hub:{issuer_id}"


def page_id(issuer_id: str, page: int) -> str:
    return f"event-page:{issuer_id}:{page}"


def page_of(sequence: int) -> int:
    return (sequence - 1) // PAGE_SIZE


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class DeliveryPolicy(_Model):
    """How the hub delivers, from the worker's settings (EventsSettings); every batch carries
    the current one, so a changed setting applies from the next event on."""

    retry_initial: timedelta = timedelta(seconds=5)
    retry_max_interval: timedelta = timedelta(hours=1)
    retry_for: timedelta = timedelta(days=3)
    failing_after: int = 3
    batch_size: int = 100
    # Delivery loops per endpoint, each for the cards that hash to it (shard_of): a slow batch
    # for some cards does not hold the others. Fixed per endpoint while it has a backlog split
    # between its loops (events/delivery_loop.py, reshard).
    shards: int = 2
    attempt_timeout: timedelta = timedelta(minutes=5)
    # A healthy loop's attempt runs as a local activity within the hub's workflow task, for at
    # most this long; zero: always an activity (events/delivery_loop.py, Deliveries.attempt).
    fast_attempt_timeout: timedelta = timedelta(seconds=5)
    # The delivery activity heartbeats after each request: a worker that died mid-attempt is
    # noticed this fast, not at the end of the attempt's timeout.
    heartbeat_timeout: timedelta = timedelta(seconds=40)


class EventBatch(Message):
    kind: Literal["events"] = messages.EVENT_BATCH
    events: list[Event]
    policy: DeliveryPolicy = Field(default_factory=DeliveryPolicy)


class SentEvent(_Model):
    """An event a card workflow handed to its issuer's hub (which delivers it to every
    subscribed endpoint, and serves it in the feed)."""

    id: str
    type: str
    occurred_at: str


class EmitInput(_Model):
    issuer_id: str
    events: list[Event]


# Longer than this, the emit result names the count and the last type only.
EMITTED_MAX_CHARS = 180


def emitted(events: list[Event]) -> str:
    """The emit activity's result: the types the hub got, in order, a run of one type counted
    ("order.shipped, order.shipment_updated", "order.production_status_changed x4"). A local
    activity's input is not recorded, so this is what the order's history (and the Temporal
    UI, on the marker) keeps of a batch; it replaces a summary, which cost each marker a
    second sealed payload (docs/benchmarks.md, "History per order"). Empty: events are off."""
    runs: list[tuple[str, int]] = []
    for event in events:
        if runs and runs[-1][0] == event.type:
            runs[-1] = (event.type, runs[-1][1] + 1)
        else:
            runs.append((event.type, 1))
    text = ", ".join(kind if n == 1 else f"{kind} x{n}" for kind, n in runs)
    if len(text) <= EMITTED_MAX_CHARS or not events:
        return text
    return f"{len(events)} events, the last {events[-1].type}"


class EndpointStatus(StrEnum):
    ENABLED = "enabled"
    FAILING = "failing"  # deliveries keep failing; still retried, alerted
    DISABLED = "disabled"  # by the issuer, or after failing for the whole retry window


class EndpointSpec(Message):
    kind: Literal["create_endpoint"] = messages.CREATE_ENDPOINT
    url: str = Field(max_length=2048)
    event_types: list[str] = Field(min_length=1)  # "*" for all
    description: str | None = Field(default=None, max_length=200)
    # The first secret (whsec_...); created by events/api.py, never chosen by a caller.
    secret: str
    created_at: str


class EndpointChange(Message):
    kind: Literal["update_endpoint"] = messages.UPDATE_ENDPOINT
    endpoint_id: str
    event_types: list[str] | None = None
    url: str | None = None
    description: str | None = None
    status: EndpointStatus | None = None  # DISABLED, or ENABLED to resume (the backlog follows)


class SecretRotation(Message):
    kind: Literal["rotate_secret"] = messages.ROTATE_SECRET
    endpoint_id: str
    secret: str
    at: str
    # The old secrets keep signing this long (receivers switch within it), then are dropped.
    grace: timedelta = timedelta(hours=24)


class Secret(_Model):
    value: str
    created_at: str
    expires_at: str | None = None

    def expired(self, now: str) -> bool:
        return self.expires_at is not None and datetime.fromisoformat(self.expires_at) <= datetime.fromisoformat(now)


class Endpoint(_Model):
    """An endpoint as the hub keeps it (secrets included: the hub's history is sealed)."""

    endpoint_id: str
    url: str
    event_types: list[str]
    description: str | None = None
    secrets: list[Secret]
    status: EndpointStatus = EndpointStatus.ENABLED
    created_at: str
    cursor: int = 0  # every event up to this sequence was delivered (or is not subscribed)
    failures: int = 0  # consecutive failed attempts
    failing_since: str | None = None
    last_error: str | None = None
    delivered: int = 0
    # Per delivery loop (shard_of): where each is, and its consecutive failures; ``cursor`` and
    # ``failures`` are the slowest and the worst of them. Empty until the hub starts the loops.
    shard_cursors: list[int] = Field(default_factory=list)
    shard_failures: list[int] = Field(default_factory=list)

    def wants(self, event_type: str) -> bool:
        return "*" in self.event_types or event_type in self.event_types


class EndpointView(_Model):
    """An endpoint as the issuer sees it: no secret."""

    endpoint_id: str
    url: str
    event_types: list[str]
    description: str | None = None
    status: EndpointStatus
    created_at: str
    cursor: int
    backlog: int
    failures: int
    failing_since: str | None = None
    last_error: str | None = None
    delivered: int
    secrets: int  # how many secrets sign (more than one during a rotation)


class EndpointCreated(_Model):
    endpoint: EndpointView
    secret: str  # shown once: at creation and at each rotation


class Redelivery(Message):
    kind: Literal["redeliver"] = messages.REDELIVER
    event: Event
    endpoint_id: str | None = None  # None: every enabled endpoint subscribed to it


class RedeliveryResult(_Model):
    delivered_to: list[str]
    failed: dict[str, str]


class TailRequest(_Model):
    after: int = 0
    limit: int = 100


class HubTail(_Model):
    sealed_upto: int  # sequences up to this one are in pages (events/contract.py PAGE_SIZE)
    last_sequence: int
    events: list[Event]  # of the unsealed tail, after the request's ``after``


class EventPage(_Model):
    """A sealed page, as the page workflow returns it (for readers: the feed, deliveries)."""

    issuer_id: str
    page: int
    events: list[Event]


class PageInput(Message):
    """The page workflow's input, sent by the hub (the worker)."""

    kind: Literal["event_page.start"] = messages.EVENT_PAGE_START
    issuer_id: str
    page: int
    events: list[Event]


class HubState(_Model):
    """Carried across continue-as-new; bounded (the tail is under one page, the recent ids capped)."""

    last_sequence: int = 0
    sealed_upto: int = 0
    tail: list[Event] = Field(default_factory=list)
    recent_ids: list[str] = Field(default_factory=list)
    endpoints: list[Endpoint] = Field(default_factory=list)
    policy: DeliveryPolicy = Field(default_factory=DeliveryPolicy)
    duplicates_dropped: int = 0
    # Ids of the messages the hub accepted (workflows/messages.py Gate), per window: the
    # endpoint management of the issuer API, and the worker's event batches.
    seen_messages: list[str] = Field(default_factory=list)
    seen_batches: list[str] = Field(default_factory=list)


class HubInput(Message):
    kind: Literal["event_hub.start"] = messages.EVENT_HUB_START
    issuer_id: str
    state: HubState | None = None


class Target(_Model):
    endpoint_id: str
    url: str
    secrets: list[str]
    event_types: list[str]


class DeliverInput(_Model):
    issuer_id: str
    target: Target
    after: int  # deliver sequences after ..
    upto: int  # .. up to this one
    events: list[Event]  # the part still in the hub's tail (of this loop's cards); the rest is read from the pages
    tail_from: int = 0  # every event of the loop's cards from this sequence on is in ``events`` (0: from the first)
    skip: list[str] = Field(default_factory=list)  # ids already delivered by an earlier attempt of this range
    backlog: int = 0  # for the lag and backlog metrics
    shard: int = 0  # only the cards of this delivery loop (shard_of) ..
    shards: int = 1  # .. of this many; 1: every card (a redelivery)


def shard_of(card_id: str, shards: int) -> int:
    """The delivery loop of a card's events: stable across processes and replays (unlike hash())."""
    return zlib.crc32(card_id.encode()) % shards if shards > 1 else 0


class DeliverResult(_Model):
    delivered: int
    skipped: int  # not subscribed, or delivered by an earlier attempt
