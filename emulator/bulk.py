"""BULK shipments: cards grouped in a container and shipped together, notified together.

D1 groups BULK cards by ``shipment.groupId`` (first-level container) and ``orderId``
(second-level container) and ships them to one place (D1's shipment guide); its
notification body is a list precisely so that one call can carry many updates, "e.g. the
CARD_SHIPPED updates of all cards in one BULK groupId" (D1's notification guide).

The emulator's container is keyed by (issuerId, orderId if given, else groupId). A card
joins the open container when its order is accepted; the container ships when every card
still in it is personalized (CARD_PROD_DONE) and no card joined for ``bulk_window_ms``
(a stand-in for the site's dispatch cut-off). Cards that end early (exception, cancel)
leave it. Shipping moves all cards to CARD_SHIPPED at once (one tracking number: one
parcel) and sends one body with one operation per card, for each carrier step. A card
ordered after its container shipped starts a new one. Scenarios that concern a single
parcel (returned, never delivered) do not apply to BULK cards.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from emulator.config import EmulatorSettings
from emulator.faults import Faults
from emulator.notifier import Notifier
from emulator.orders import Order
from emulator.stats import Stats

log = logging.getLogger(__name__)

GroupState = Literal["open", "shipping", "shipped", "empty"]
POLL_S = 0.02
KEEP_GROUPS = 500


@dataclass(eq=False)
class Group:
    issuer_id: str
    key: str
    members: list[Order]
    last_join: float
    state: GroupState = "open"
    arrived: set[str] = field(default_factory=set)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    # Operations per body sent (one entry per carrier step).
    bodies: list[int] = field(default_factory=list)
    tracking_number: str | None = None
    carrier: str | None = None
    task: asyncio.Task[None] | None = None

    def to_json(self) -> dict[str, Any]:
        first = self.members[0] if self.members else None
        return {
            "issuerId": self.issuer_id,
            "container": self.key,
            "groupId": first.group_id if first else None,
            "orderId": first.bulk_order_id if first else None,
            "state": self.state,
            "cardIds": [m.card_id for m in self.members],
            "issuerRequestIds": [m.issuer_request_id for m in self.members],
            "bodies": list(self.bodies),
            "carrier": self.carrier,
            "trackingNumber": self.tracking_number,
        }


# (order, shipment status, first step?, carrier, tracking number) → mutate the order's state.
ShipState = Callable[..., None]


class BulkShipper:
    def __init__(self, settings: EmulatorSettings, faults: Faults, stats: Stats, notifier: Notifier) -> None:
        self._settings = settings
        self._faults = faults
        self._stats = stats
        self._notifier = notifier
        self.window_ms = settings.bulk_window_ms
        self._open: dict[tuple[str, str], Group] = {}
        self._of: dict[str, Group] = {}  # operationId → its group
        self._groups: list[Group] = []
        self._senders: set[asyncio.Task[None]] = set()
        self.ship_state: ShipState | None = None  # set by the simulator (it owns order states)
        self.step_delay_s: Callable[[Order], float] = lambda order: 0.0

    # ------------------------------------------------------------------ membership

    def join(self, order: Order) -> None:
        key = order.group_key
        assert key is not None
        group = self._open.get((order.issuer_id, key))
        if group is None:
            group = Group(order.issuer_id, key, [], time.monotonic())
            self._open[(order.issuer_id, key)] = group
            self._groups.append(group)
            del self._groups[:-KEEP_GROUPS]
        group.members.append(order)
        group.last_join = time.monotonic()
        self._of[order.operation_id] = group

    def leave(self, order: Order) -> None:
        """The card ends before its container ships (exception, cancel): it leaves the container."""
        group = self._of.pop(order.operation_id, None)
        if group is None or group.state != "open":
            return
        group.members = [m for m in group.members if m is not order]

    async def ship(self, order: Order) -> bool:
        """Called when the card is personalized: wait for the container. False: the card was
        canceled before the container shipped (the caller ends it as CARD_PROD_CANCELED)."""
        group = self._of[order.operation_id]
        group.arrived.add(order.operation_id)
        if group.task is None:
            group.task = asyncio.create_task(self._run(group), name=f"bulk-{group.key}")
        while group.state == "open":
            if order.cancel_requested:
                self.leave(order)
                return False
            order.wake.clear()
            waiters = [asyncio.ensure_future(group.started.wait()), asyncio.ensure_future(order.wake.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        if order not in group.members:
            return False
        await group.done.wait()
        return True

    # ------------------------------------------------------------------ shipping

    async def _run(self, group: Group) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            active = [m for m in group.members if not m.cancel_requested]
            quiet = time.monotonic() - group.last_join >= self.window_ms / 1000
            if not active and quiet:
                group.state = "empty"
                self._open.pop((group.issuer_id, group.key), None)
                group.started.set()
                group.done.set()
                return
            if active and quiet and all(m.operation_id in group.arrived for m in active):
                break
        # Decided: from here on the container is closed and every card in it is shipped,
        # without an await before the first step (a pull & change now sees CARD_SHIPPED).
        group.members = active
        group.state = "shipping"
        self._open.pop((group.issuer_id, group.key), None)
        group.started.set()
        assert self.ship_state is not None
        accelerated = any(m.accelerated for m in active)
        group.carrier = self._settings.express_carrier if accelerated else self._settings.carrier
        queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue()
        sender = asyncio.create_task(self._send(group, queue), name=f"bulk-notify-{group.key}")
        self._senders.add(sender)
        sender.add_done_callback(self._senders.discard)
        try:
            for index, status in enumerate(self._settings.shipment_statuses):
                if index > 0:
                    await asyncio.sleep(self.step_delay_s(active[0]))
                ops = []
                for member in active:
                    if index == 0:
                        self.ship_state(member, status, first=True, carrier=group.carrier, number=group.tracking_number)
                        group.tracking_number = (member.shipment or {}).get("trackingNumber")
                    else:
                        self.ship_state(member, status)
                    ops.append(member.record())
                queue.put_nowait(ops)
                log.info("bulk container %s: %d card(s) at %s", group.key, len(ops), status)
        finally:
            queue.put_nowait(None)
            group.state = "shipped"
            group.done.set()

    async def _send(self, group: Group, queue: asyncio.Queue[list[dict[str, Any]] | None]) -> None:
        """Deliver the container's bodies in order, each after the cards' own earlier notifications."""
        while True:
            ops = await queue.get()
            if ops is None:
                return
            body = {"operations": ops}
            group.bodies.append(len(ops))
            if self._settings.notification_mode == "capture" or self._faults.capture_notifications:
                self._notifier.captured.append(body)
                self._stats.notifications_captured += 1
                continue
            if self._faults.drop_notifications:
                self._stats.notifications_dropped += len(ops)
                continue
            # The notifier exposes no drain event; polling a counter every 10 ms is cheap.
            while any(self._notifier.pending_for(m) for m in group.members):  # noqa: ASYNC110
                await asyncio.sleep(POLL_S / 2)
            self._stats.bulk_notifications += 1
            self._stats.bulk_operations += len(ops)
            await self._notifier.deliver_body(group.members[0], body)

    # ------------------------------------------------------------------ admin

    def set_window(self, window_ms: int) -> None:
        self.window_ms = window_ms

    def groups(self) -> list[dict[str, Any]]:
        return [g.to_json() for g in self._groups]

    async def stop(self) -> None:
        tasks = [g.task for g in self._groups if g.task is not None] + list(self._senders)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._open.clear()
        self._of.clear()
        self._groups.clear()
        self.window_ms = self._settings.bulk_window_ms
