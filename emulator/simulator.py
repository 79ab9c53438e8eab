"""Walks each accepted order through production and shipment, like a D1 personalization center.

Happy path (THALES, INDIVIDUAL): CARD_PROD_REQUESTED → DATA_PREPARED (dueDate,
productionSite) → CARD_PROD_READY → CARD_PROD_ONGOING → CARD_PROD_DONE → CARD_SHIPPED
(status SUCCESSFUL, endTime, shipment) → one more CARD_SHIPPED update per remaining carrier
status, ending at the last one ("Delivered" by default). Top-level status is PENDING
before CARD_SHIPPED (our reading: emulator/README.md).

Variants:

* ``INSTANT``: CARD_PROD_REQUESTED → CARD_PROD_READY → CARD_PROD_DONE (SUCCESSFUL): the
  card is handed over at the station. A ``CENTRAL`` order without shipment ends at
  CARD_PROD_DONE (SUCCESSFUL) too.
* ``BULK`` shipments: production per card, then the container ships when all its cards
  are done (:mod:`emulator.bulk`), one notification body per carrier step for all of them.
* Scenarios (:mod:`emulator.scenarios`): DATA_EXCEPTION, CARD_PROD_EXCEPTION, an on-hold
  pause, a returned card, a card never delivered; the ``dataExceptions`` fault too.
* Pull & change (:mod:`emulator.pull_and_change`): an accepted CANCEL ends the order at
  CARD_PROD_CANCELED (FAILED) at the next step; ACCELERATE shortens the remaining steps and
  ships with the express carrier; REDIRECT changes the address the card ships to.

The order's state advances at each step whether or not the notification is delivered:
the notifier has its own queue, and ``productionStatus`` always tells the truth.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from d1.statuses import OperationStatus, ProductionStatus
from emulator.activation import Activator
from emulator.bulk import BulkShipper
from emulator.config import EmulatorSettings
from emulator.error_codes import ERRORS, ErrorCode
from emulator.faults import Faults
from emulator.notifier import Notifier
from emulator.orders import Order, now_iso
from emulator.scenarios import ScenarioRule
from emulator.stats import Stats

log = logging.getLogger(__name__)

S = ProductionStatus

# Normalised carrier messages for the default shipment statuses; others echo the status.
SHIPMENT_MESSAGES: dict[str, str] = {
    "InfoReceived": "Shipment information received by the carrier",
    "InTransit": "Shipment in transit",
    "OutForDelivery": "Out for delivery",
    "Delivered": "Delivered",
    "AttemptFail": "Delivery attempt failed",
    "Exception": "Shipment exception",
    "Returned": "Returned to sender",
}

PRODUCTION_STEPS: tuple[ProductionStatus, ...] = (
    S.DATA_PREPARED,
    S.CARD_PROD_READY,
    S.CARD_PROD_ONGOING,
    S.CARD_PROD_DONE,
)
INSTANT_STEPS: tuple[ProductionStatus, ...] = (S.CARD_PROD_READY, S.CARD_PROD_DONE)
# An accelerated order moves this many times faster.
ACCELERATION = 5
CANCEL_REASON = "canceled at the issuer's request (pull & change)"


def tracking_number() -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(10))


# The least time between the last step the issuer heard and the cardholder's activation: a
# moment, no more. The running order decides "delivered" itself from every notification in its
# history (receiver/activation.py), so an activation right behind the Delivered notification is
# not flagged; tests/lifecycle/test_activation.py sends them back to back.
ACTIVATION_DELAY_S = 0.05


class ProductionSimulator:
    """One asyncio task per order; stopped with the application."""

    def __init__(
        self, settings: EmulatorSettings, faults: Faults, stats: Stats, notifier: Notifier, bulk: BulkShipper
    ) -> None:
        self._settings = settings
        self._faults = faults
        self._stats = stats
        self._notifier = notifier
        self._bulk = bulk
        bulk.ship_state = self.ship_state
        bulk.step_delay_s = self.step_delay_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # D1's Card Activation call of the ACTIVATED scenarios (emulator/activation.py).
        self.activator: Activator | None = None

    def start(self, order: Order) -> None:
        if order.group_key is not None:
            self._bulk.join(order)
        task = asyncio.create_task(self._run(order), name=f"produce-{order.operation_id}")
        self._tasks[order.operation_id] = task
        task.add_done_callback(lambda t: self._forget(order.operation_id, t))

    def _forget(self, operation_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(operation_id) is task:
            del self._tasks[operation_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("production simulation failed operationId=%s", operation_id, exc_info=task.exception())

    def running(self) -> int:
        return len(self._tasks)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        await self._bulk.stop()

    # -------------------------------------------------------------- emitting

    def emit_operation(self, order: Order, op: dict[str, Any]) -> None:
        """Queue one operation on the order's notification stream (or drop it, per the faults)."""
        if self._faults.drop_notifications:
            self._stats.notifications_dropped += 1
        else:
            self._notifier.enqueue(order, op)

    def _emit(self, order: Order) -> None:
        self.emit_operation(order, order.record())

    # -------------------------------------------------------------- pacing

    def step_delay_s(self, order: Order) -> float:
        rule = order.scenario
        delay_ms = rule.stepDelayMs if rule is not None and rule.stepDelayMs is not None else self._faults.step_delay_ms
        return delay_ms / 1000 / (ACCELERATION if order.accelerated else 1)

    async def _pause(self, order: Order, seconds: float | None = None) -> None:
        """Wait one step (or ``seconds``); a cancel ends the wait at once, an acceleration shortens it."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not order.cancel_requested:
            total = seconds if seconds is not None else self.step_delay_s(order)
            remaining = start + total - loop.time()
            if remaining <= 0:
                return
            order.wake.clear()
            try:
                await asyncio.wait_for(order.wake.wait(), remaining)
            except TimeoutError:
                return

    # -------------------------------------------------------------- the walk

    async def _run(self, order: Order) -> None:
        try:
            self._emit(order)  # CARD_PROD_REQUESTED, set when the order was accepted
            rule = order.scenario
            kind = rule.scenario if rule is not None else None
            if order.fail_data_preparation or kind == "DATA_EXCEPTION":
                await self._pause(order)
                if order.cancel_requested:
                    self._cancel(order)
                    return
                reason = rule.default_reason if rule is not None and kind == "DATA_EXCEPTION" else None
                self._reject(order, reason or "injected by the emulator's dataExceptions fault")
                return
            steps = INSTANT_STEPS if order.channel == "INSTANT" else PRODUCTION_STEPS
            for status in steps:
                await self._pause(order)
                if order.cancel_requested:
                    self._cancel(order)
                    return
                if status == S.CARD_PROD_ONGOING and kind == "ON_HOLD" and rule is not None:
                    await self._hold(order, rule)
                    if order.cancel_requested:
                        self._cancel(order)
                        return
                if kind == "CARD_PROD_EXCEPTION" and rule is not None and status == rule.atStatus:
                    self._production_exception(order, rule.default_reason)
                    return
                self._produce(order, status, final=status == steps[-1] and not order.ships)
            if not order.ships:
                return
            if order.group_key is not None:
                if not await self._bulk.ship(order):
                    self._cancel(order)
                return
            await self._ship_individually(order, rule)
        finally:
            order.finished = True
            self._bulk.leave(order)
            self._notifier.close(order)

    def _produce(self, order: Order, status: ProductionStatus, *, final: bool = False) -> None:
        if status in (S.DATA_PREPARED, S.CARD_PROD_READY) and order.due_date is None:
            due = datetime.now(UTC).date() + timedelta(days=self._settings.due_in_days)
            order.due_date = due.isoformat()
            order.production_site = self._settings.production_site
        order.production_status = status
        if status == S.CARD_PROD_DONE:
            self._stats.cards[order.card_id].produced += 1
        if final:  # handed over at the station / kept by the partner: production is the end
            order.operation_status = OperationStatus.SUCCESSFUL
            order.end_time = now_iso()
        self._emit(order)

    async def _hold(self, order: Order, rule: ScenarioRule) -> None:
        # CARD_PROD_ON_HOLD is our name for the on-hold path D1 draws without a value (G).
        order.production_status = S.CARD_PROD_ON_HOLD
        order.reason = rule.default_reason
        self._emit(order)
        await self._pause(order, rule.holdMs / 1000)
        order.reason = None

    async def _ship_individually(self, order: Order, rule: ScenarioRule | None) -> None:
        kind = rule.scenario if rule is not None else None
        statuses = list(self._settings.shipment_statuses)
        if kind in ("RETURNED", "NOT_DELIVERED"):
            statuses = statuses[:2]
        number = tracking_number()
        for index, shipment_status in enumerate(statuses):
            await self._pause(order)
            if index == 0:
                if order.cancel_requested:
                    self._cancel(order)
                    return
                carrier = self._settings.express_carrier if order.accelerated else self._settings.carrier
                self.ship_state(order, shipment_status, first=True, carrier=carrier, number=number)
            else:
                self.ship_state(order, shipment_status)
            self._emit(order)
            if index == 0 and kind == "ACTIVATED_BEFORE_DELIVERY":
                await self._activate(order, kind)
        if kind == "ACTIVATED":
            await self._activate(order, kind)
        if rule is not None and kind == "RETURNED":
            await self._pause(order)
            self._returned(order, rule.default_reason)
        elif rule is not None and kind == "NOT_DELIVERED":
            await self._pause(order)
            self.ship_state(order, "Exception", message=rule.default_reason)
            self._emit(order)  # ... and then nothing more: the card is never delivered

    async def _activate(self, order: Order, kind: str) -> None:
        """The cardholder activates once the issuer heard the last step (its stream drained)."""
        while self._notifier.pending_for(order):  # noqa: ASYNC110 - no drain event to wait on
            await asyncio.sleep(0.02)
        # Not in the same instant: the issuer's side has taken the last step in by then.
        await self._pause(order, max(self.step_delay_s(order), ACTIVATION_DELAY_S))
        if self.activator is not None:
            await self.activator.activate(order.issuer_id, order.card_id, trigger=kind)

    def ship_state(
        self,
        order: Order,
        shipment_status: str,
        *,
        first: bool = False,
        carrier: str | None = None,
        number: str | None = None,
        message: str | None = None,
    ) -> None:
        """Move the order to one carrier step (CARD_SHIPPED); shared by individual and BULK shipping."""
        if first:
            carrier = carrier or self._settings.carrier
            number = number or tracking_number()
            order.production_status = S.CARD_SHIPPED
            order.operation_status = OperationStatus.SUCCESSFUL
            order.end_time = now_iso()
            order.shipment = {
                "carrier": carrier,
                "trackingNumber": number,
                "trackingUrl": f"https://tracking.emulator.invalid/{carrier}/{number}",
            }
        assert order.shipment is not None
        order.shipment = {
            **order.shipment,
            "status": shipment_status,
            "message": message or SHIPMENT_MESSAGES.get(shipment_status, shipment_status),
        }

    def _reject(self, order: Order, reason: str) -> None:
        order.production_status = S.DATA_EXCEPTION
        order.operation_status = OperationStatus.FAILED
        order.end_time = now_iso()
        order.error_code = ErrorCode.DATA_REJECTED.value
        order.error = ERRORS[ErrorCode.DATA_REJECTED].default_error
        order.reason = reason
        self._emit(order)

    def _production_exception(self, order: Order, reason: str) -> None:
        order.production_status = S.CARD_PROD_EXCEPTION
        order.operation_status = OperationStatus.FAILED
        order.end_time = now_iso()
        order.error_code = ErrorCode.PRODUCTION_FAILED.value
        order.error = ERRORS[ErrorCode.PRODUCTION_FAILED].default_error
        order.reason = reason
        self._emit(order)

    def _returned(self, order: Order, reason: str) -> None:
        # CARD_RETURNED on a PRODUCE operation is our reading (emulator/scenarios.py OUR_READING).
        order.production_status = S.CARD_RETURNED
        order.reason = reason
        self.ship_state(order, "Returned", message=reason)
        self._emit(order)

    def _cancel(self, order: Order) -> None:
        # CARD_PROD_CANCELED: the PRODUCE operation ends without a card (top-level FAILED, a GUESS:
        # D1 does not say), without errorCode: nothing went wrong, the issuer asked for it.
        order.production_status = S.CARD_PROD_CANCELED
        order.operation_status = OperationStatus.FAILED
        order.end_time = now_iso()
        order.reason = CANCEL_REASON
        self._emit(order)
