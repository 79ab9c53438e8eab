"""`EVENTS_*`: events out (webhooks, the event feed)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EventsSettings(BaseSettings):
    """`EVENTS_*`: events out, webhooks to the issuer's endpoints and the event feed (events/, docs/events.md).

    Read by the worker (emission, delivery) and by whatever manages endpoints (the URL checks);
    the delivery policy travels with each batch of events to the issuer's event hub, so a
    change applies from the next event on.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTS_", extra="ignore", use_attribute_docstrings=True)

    enabled: bool = True
    """Emit events from the card workflows (`false`: no event, no webhook, an empty feed; one
    local-activity marker per order tells each order so)."""
    allow_loopback: bool = False
    """Development only: endpoints on loopback, over plain `http://` too (`make run`'s sample receiver)."""
    allowed_networks: list[str] = []
    """Private networks (CIDR, JSON list) an operator allows as webhook targets; refused otherwise."""
    retry_initial: timedelta = timedelta(seconds=5)
    """Wait after a first failed delivery; doubles with each failure up to `EVENTS_RETRY_MAX_INTERVAL`."""
    retry_max_interval: timedelta = timedelta(hours=1)
    """Longest wait between two delivery attempts to a failing endpoint."""
    retry_for: timedelta = timedelta(days=3)
    """An endpoint failing this long is disabled (its backlog is kept: enabling it delivers it)."""
    failing_after: int = Field(default=3, ge=1)
    """Consecutive failed attempts after which an endpoint is marked failing (metric, alert)."""
    request_timeout_s: float = Field(default=10.0, gt=0, le=60)
    """Timeout of one webhook request, in seconds (a slower answer counts as a failure)."""
    batch_size: int = Field(default=100, ge=1, le=500)
    """Events per delivery attempt (one activity) to one endpoint."""
    concurrency: int = Field(default=8, ge=1, le=64)
    """Cards delivered in parallel within one attempt (each card's events stay in order)."""
    flush_interval_ms: int = Field(default=20, ge=0, le=1000)
    """While no signal to the hub is in flight, the worker gathers its orders' events this long into
    one; while one is, the next gathers until it landed (group commit, events/coalesce.py)."""
    secret_grace: timedelta = timedelta(hours=24)
    """After a secret rotation, the old secret keeps signing this long."""
    delivery_shards: int = Field(default=2, ge=1, le=64)
    """Delivery loops per endpoint, each for the cards whose id hashes to it: a slow batch for some
    cards does not hold the others' (each card's events stay in one loop, in order). An endpoint
    takes a new value once its loops stand at one cursor. More loops are more hub history and
    tasks: 2 gave the lowest lag in the bench (docs/benchmarks.md, "Events: group commit and local
    attempts")."""
    fast_attempt_s: float = Field(default=5.0, ge=0, le=8)
    """A delivery loop whose last attempt succeeded posts its next batch from within the hub's
    workflow task (a local activity) for at most this long; past it, or after a failure, the
    attempt is an activity of its own. 0: always an activity. At most 8 s: the hub's workflow
    task (10 s) must not time out while it waits."""
    task_queue: str = ""
    """Task queue of the issuers' event hubs and their deliveries, polled by a worker of its own in
    the worker process (its own pollers and slots: the hubs' tasks do not wait behind the orders').
    Empty: `TEMPORAL_TASK_QUEUE` followed by `-events` (stacks on one namespace keep apart); the
    orders' queue itself: one worker for both."""
    worker: str = Field(default="inline", pattern="^(inline|off|only)$")
    """What a worker process polls of `EVENTS_TASK_QUEUE`: `inline`, the orders' queue and the events'
    queue (two workers in one process); `off`, the orders' queue only (the events run in processes
    of their own); `only`, the events' queue only (such a process: no D1 activity, no key)."""

    def queue(self, orders_queue: str) -> str:
        """Where the hubs run, next to workers polling ``orders_queue``."""
        return self.task_queue or f"{orders_queue}-events"
