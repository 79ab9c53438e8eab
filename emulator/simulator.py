"""Walks each accepted order through production and shipment, like a D1 personalization center.

CARD_PROD_REQUESTED → DATA_PREPARED (dueDate, productionSite) → CARD_PROD_READY →
CARD_PROD_ONGOING → CARD_PROD_DONE → CARD_SHIPPED (status SUCCESSFUL, endTime, shipment)
→ one more CARD_SHIPPED update per remaining carrier status, ending at the last one
("Delivered" by default). Top-level status is PENDING before CARD_SHIPPED (tracking.md §3).

The order's state advances at each step whether or not the notification is delivered:
the notifier has its own queue, and ``productionStatus`` always tells the truth.
An order marked by the ``dataExceptions`` fault stops at DATA_EXCEPTION (FAILED) instead.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime, timedelta

from d1.statuses import OperationStatus, ProductionStatus
from emulator.config import EmulatorSettings
from emulator.error_codes import ERRORS, ErrorCode
from emulator.faults import Faults
from emulator.notifier import Notifier
from emulator.orders import Order, now_iso
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


def _tracking_number() -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(10))


class ProductionSimulator:
    """One asyncio task per order; stopped with the application."""

    def __init__(self, settings: EmulatorSettings, faults: Faults, stats: Stats, notifier: Notifier) -> None:
        self._settings = settings
        self._faults = faults
        self._stats = stats
        self._notifier = notifier
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, order: Order) -> None:
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

    async def _pause(self) -> None:
        await asyncio.sleep(self._faults.step_delay_ms / 1000)

    def _emit(self, order: Order) -> None:
        op = order.record()
        if self._faults.drop_notifications:
            self._stats.notifications_dropped += 1
        else:
            self._notifier.enqueue(order, op)

    async def _run(self, order: Order) -> None:
        try:
            self._emit(order)  # CARD_PROD_REQUESTED, set when the order was accepted
            if order.fail_data_preparation:
                await self._pause()
                self._reject(order)
                return
            for status in PRODUCTION_STEPS:
                await self._pause()
                self._produce(order, status)
            for index, shipment_status in enumerate(self._settings.shipment_statuses):
                await self._pause()
                self._ship(order, shipment_status, first=index == 0)
        finally:
            order.finished = True
            self._notifier.close(order)

    def _produce(self, order: Order, status: ProductionStatus) -> None:
        if status == S.DATA_PREPARED:
            due = datetime.now(UTC).date() + timedelta(days=self._settings.due_in_days)
            order.due_date = due.isoformat()
            order.production_site = self._settings.production_site
        order.production_status = status
        self._emit(order)

    def _ship(self, order: Order, shipment_status: str, *, first: bool) -> None:
        if first:
            carrier = self._settings.carrier
            tracking_number = _tracking_number()
            order.production_status = S.CARD_SHIPPED
            order.operation_status = OperationStatus.SUCCESSFUL
            order.end_time = now_iso()
            order.shipment = {
                "carrier": carrier,
                "trackingNumber": tracking_number,
                "trackingUrl": f"https://tracking.emulator.invalid/{carrier}/{tracking_number}",
            }
        assert order.shipment is not None
        order.shipment = {
            **order.shipment,
            "status": shipment_status,
            "message": SHIPMENT_MESSAGES.get(shipment_status, shipment_status),
        }
        self._emit(order)

    def _reject(self, order: Order) -> None:
        order.production_status = S.DATA_EXCEPTION
        order.operation_status = OperationStatus.FAILED
        order.end_time = now_iso()
        order.error_code = ErrorCode.DATA_REJECTED.value
        order.error = ERRORS[ErrorCode.DATA_REJECTED].default_message
        order.reason = "injected by the emulator's dataExceptions fault"
        self._emit(order)
