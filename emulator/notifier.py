"""Delivers notifications to the issuer's receiver, like D1's outbound Card API.

D1 documents at-least-once delivery with retries but not the schedule, so the emulator
picks one: any 2xx is delivered; anything else (other status, connection error, timeout)
is retried with exponential backoff and jitter, until
``notify_give_up_s`` has passed for that notification.

Each order has its own FIFO stream: a step's notification is not sent before the
previous one was delivered or given up, while different orders proceed independently.
In ``capture`` mode the bodies are appended to :attr:`Notifier.captured` instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from d1.paths import notification_path
from emulator.config import EmulatorSettings
from emulator.faults import Faults
from emulator.outbound import OutboundHttp
from emulator.stats import Stats

log = logging.getLogger(__name__)


class Source(Protocol):
    """What the notifier needs of an operation's source: a card order or a tracked card."""

    @property
    def issuer_id(self) -> str: ...

    @property
    def operation_id(self) -> str: ...

    @property
    def correlation_id(self) -> str | None: ...


@dataclass
class _Stream:
    """The pending notifications of one order and the task that sends them."""

    order: Source
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    # Notifications queued or being delivered (the end-of-stream marker not included).
    pending: int = 0


def backoff_s(attempt: int, base_ms: int, cap_ms: int) -> float:
    """Delay before retry number ``attempt`` (1-based): capped doubling, "equal jitter"."""
    ceiling_ms = min(cap_ms, base_ms * 2 ** min(attempt - 1, 40))
    return (ceiling_ms / 2 + random.uniform(0, ceiling_ms / 2)) / 1000


class Notifier:
    def __init__(self, settings: EmulatorSettings, stats: Stats, faults: Faults | None = None) -> None:
        self._settings = settings
        self._stats = stats
        self._faults = faults
        self._streams: dict[str, _Stream] = {}
        # Per-tenant mTLS client certificate and optional outbound OAuth (emulator/outbound.py).
        self._client: OutboundHttp | None = None
        self.captured: list[dict[str, Any]] = []
        self._chaos_tasks: set[asyncio.Task[None]] = set()
        self._send_slots = asyncio.Semaphore(settings.notify_concurrency)

    async def start(self) -> None:
        self._client = OutboundHttp(self._settings)

    async def stop(self) -> None:
        await self.cancel_all()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def cancel_all(self) -> None:
        tasks = [s.task for s in self._streams.values() if s.task is not None] + list(self._chaos_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._streams.clear()

    def pending(self) -> int:
        """Notifications queued or being delivered (0 once everything went out)."""
        return sum(s.pending for s in self._streams.values()) + len(self._chaos_tasks)

    def enqueue(self, order: Source, operation: dict[str, Any]) -> None:
        body = {"operations": [operation]}
        if self._settings.notification_mode == "capture" or (self._faults and self._faults.capture_notifications):
            self.captured.append(body)
            self._stats.notifications_captured += 1
            return
        if self._faults is not None and self._faults.chaos_active:
            self._enqueue_chaotic(order, body)
            return
        stream = self._streams.get(order.operation_id)
        if stream is None:
            stream = _Stream(order=order)
            self._streams[order.operation_id] = stream
            stream.task = asyncio.create_task(self._run(stream), name=f"notify-{order.operation_id}")
        stream.pending += 1
        stream.queue.put_nowait(body)

    def _enqueue_chaotic(self, order: Source, body: dict[str, Any]) -> None:
        """Chaos mode: lose, duplicate and reorder (each copy is delivered on its own)."""
        assert self._faults is not None
        delays = self._faults.notification_copies()
        if not delays:
            self._stats.notifications_dropped += 1
            return
        for delay in delays:
            task = asyncio.create_task(self._deliver_after(order, body, delay))
            self._chaos_tasks.add(task)
            task.add_done_callback(self._chaos_tasks.discard)

    async def _deliver_after(self, order: Source, body: dict[str, Any], delay: float) -> None:
        await asyncio.sleep(delay)
        await self._deliver(order, body)

    def close(self, order: Source) -> None:
        """No more notifications for this order: its stream ends once drained."""
        stream = self._streams.get(order.operation_id)
        if stream is not None:
            stream.queue.put_nowait(None)

    def pending_for(self, order: Source) -> int:
        """This order's notifications still queued or being delivered (a bulk body waits for 0)."""
        stream = self._streams.get(order.operation_id)
        return stream.pending if stream is not None else 0

    async def deliver_body(self, order: Source, body: dict[str, Any]) -> None:
        """Deliver one body now, with the usual retries, outside the per-order streams
        (a BULK body carries the operations of many orders; see emulator/bulk.py)."""
        await self._deliver(order, body)

    async def _run(self, stream: _Stream) -> None:
        try:
            while True:
                body = await stream.queue.get()
                if body is None:
                    return
                try:
                    await self._deliver(stream.order, body)
                finally:
                    stream.pending -= 1
        finally:
            if self._streams.get(stream.order.operation_id) is stream:
                del self._streams[stream.order.operation_id]

    async def _deliver(self, order: Source, body: dict[str, Any]) -> None:
        assert self._client is not None, "Notifier.start() was not called"
        settings = self._settings
        url = settings.receiver_base_url + notification_path(order.issuer_id)
        headers = {"content-type": "application/json", "x-correlation-id": order.correlation_id or order.operation_id}
        content = json.dumps(body, separators=(",", ":")).encode("utf-8")
        op = body["operations"][0]
        step = op["details"]["status"]
        shipment = op["details"].get("shipment") or {}
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            self._stats.notification_attempts += 1
            try:
                async with self._send_slots:  # bounded like a real sender: waiting is not a failed attempt
                    response = await self._client.post(order.issuer_id, url, content=content, headers=headers)
                outcome = f"HTTP {response.status_code}"
                delivered = 200 <= response.status_code < 300
            except Exception as exc:  # connection errors, timeouts, bad URL: all retried
                outcome = type(exc).__name__
                delivered = False
            if delivered:
                self._stats.notifications_sent += 1
                log.info(
                    "notification delivered operationId=%s status=%s shipment=%s attempt=%d",
                    order.operation_id,
                    step,
                    shipment.get("status", "-"),
                    attempt,
                )
                return
            self._stats.notification_failures += 1
            delay = backoff_s(attempt, settings.notify_retry_base_ms, settings.notify_retry_cap_ms)
            if time.monotonic() - started + delay > settings.notify_give_up_s:
                self._stats.notifications_given_up += 1
                log.warning(
                    "notification given up operationId=%s status=%s after %d attempts (last: %s)",
                    order.operation_id,
                    step,
                    attempt,
                    outcome,
                )
                return
            log.info(
                "notification not delivered operationId=%s status=%s attempt=%d (%s); retry in %.3fs",
                order.operation_id,
                step,
                attempt,
                outcome,
                delay,
            )
            await asyncio.sleep(delay)
