"""The tracking hub: D1 tracks a card that Thales did not personalize ("Track Card").

What D1 documents (d1/tracking.py): a ``trackingType`` of PRODUCTION, SHIPMENT or RETURN,
``202 {operationId}``, and ``STANDALONE_TRACKING`` notifications whose ``details`` carry
``trackingType``, ``productionSite``, ``status`` and ``shipment``. The emulator plays each
type, one step (``stepDelayMs``) apart, on the card's own notification stream:

* PRODUCTION: one SUCCESSFUL notification, ``details.status`` CARD_SHIPPED;
* SHIPMENT: PENDING (CARD_SHIPPED, the parcel registered: carrier, trackingNumber,
  trackingUrl), then one SUCCESSFUL per carrier status (``EMULATOR_SHIPMENT_STATUSES``),
  ending Delivered;
* RETURN: one SUCCESSFUL notification, ``details.status`` CARD_RETURNED (shipment status
  Returned when the parcel was named, ``details.reason`` when one was given).

Our choices (G): the path and body members (d1/assumptions.py, d1/tracking.py); the same
``x-correlation-id`` for the same card and type is an idempotent repeat (the original
operationId, nothing new), as for pull & change; without the header every call is a new
operation. ``productionStatus`` answers for a card known only from the hub with its latest
STANDALONE_TRACKING operation (``interface.productionStatusAnswersTracking``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from d1.statuses import Operation, OperationStatus, ProductionStatus
from d1.tracking import ProductionTracking, ReturnTracking, ShipmentTracking
from emulator.config import EmulatorSettings
from emulator.faults import Faults
from emulator.notifier import Notifier
from emulator.orders import now_iso
from emulator.simulator import SHIPMENT_MESSAGES
from emulator.stats import Stats
from emulator.validation import RequestValidator

log = logging.getLogger(__name__)

KEEP_KEYS = 100_000

# details.status of each tracking type's notifications (D).
TRACKING_STATUS: dict[str, ProductionStatus] = {
    "PRODUCTION": ProductionStatus.CARD_SHIPPED,
    "SHIPMENT": ProductionStatus.CARD_SHIPPED,
    "RETURN": ProductionStatus.CARD_RETURNED,
}


@dataclass
class Tracking:
    """One STANDALONE_TRACKING operation and where it stands."""

    issuer_id: str
    card_id: str
    operation_id: str
    tracking_type: str
    start_time: str
    correlation_id: str | None
    production_site: str
    shipment: dict[str, str] | None = None
    reason: str | None = None
    operation_status: str = OperationStatus.PENDING
    end_time: str | None = None
    finished: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> ProductionStatus:
        return TRACKING_STATUS[self.tracking_type]

    def snapshot(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            "trackingType": self.tracking_type,
            "productionSite": self.production_site,
            "status": str(self.status),
        }
        if self.shipment is not None:
            details["shipment"] = dict(self.shipment)
        if self.reason is not None:
            details["reason"] = self.reason
        op: dict[str, Any] = {
            "operationId": self.operation_id,
            "operation": Operation.STANDALONE_TRACKING.value,
            "status": str(self.operation_status),
            "startTime": self.start_time,
            "cardId": self.card_id,
            "details": details,
        }
        if self.end_time is not None:
            op["endTime"] = self.end_time
        return op


class TrackingHub:
    """Accepts Track Card requests and plays their notifications (one task per operation)."""

    def __init__(
        self, settings: EmulatorSettings, validator: RequestValidator, stats: Stats, faults: Faults, notifier: Notifier
    ) -> None:
        self._settings = settings
        self._validator = validator
        self._stats = stats
        self._faults = faults
        self._notifier = notifier
        self._latest: dict[tuple[str, str], Tracking] = {}
        self._all: list[Tracking] = []
        self._seen: dict[tuple[str, str, str, str], Tracking] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def request(
        self, issuer_id: str, card_id: str, raw_body: bytes, correlation_id: str | None
    ) -> tuple[Tracking, bool]:
        """Validate and start; returns (operation, created). Raises D1Error for 4xx answers."""
        req = self._validator.track_card(raw_body)
        assert isinstance(req, ProductionTracking | ShipmentTracking | ReturnTracking)  # else it raised
        key = (issuer_id, card_id, req.trackingType, correlation_id) if correlation_id else None
        if key is not None and key in self._seen:
            self._stats.track_repeats += 1
            return self._seen[key], False
        parcel = req.shipment if isinstance(req, ShipmentTracking | ReturnTracking) else None
        tracking = Tracking(
            issuer_id=issuer_id,
            card_id=card_id,
            operation_id=str(uuid.uuid4()),
            tracking_type=req.trackingType,
            start_time=now_iso(),
            correlation_id=correlation_id,
            production_site=req.productionSite or self._settings.production_site,
            shipment=(
                {
                    "carrier": parcel.carrier,
                    "trackingNumber": parcel.trackingNumber,
                    "trackingUrl": f"https://tracking.emulator.invalid/{parcel.carrier}/{parcel.trackingNumber}",
                }
                if parcel is not None
                else None
            ),
            reason=req.reason if isinstance(req, ReturnTracking) else None,
        )
        self._stats.track_requests += 1
        self._latest[(issuer_id, card_id)] = tracking
        self._all.append(tracking)
        if key is not None:
            self._seen[key] = tracking
            if len(self._seen) > KEEP_KEYS:
                self._seen.pop(next(iter(self._seen)))
        task = asyncio.create_task(self._run(tracking), name=f"track-{tracking.operation_id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        log.info("tracking %s started issuerId=%s cardId=%s", tracking.tracking_type, issuer_id, card_id)
        return tracking, True

    def latest(self, issuer_id: str, card_id: str) -> Tracking | None:
        return self._latest.get((issuer_id, card_id))

    def all(self) -> list[Tracking]:
        return list(self._all)

    # ------------------------------------------------------------------ the simulation

    def _emit(self, tracking: Tracking) -> None:
        op = tracking.snapshot()
        tracking.history.append(op)
        if self._faults.drop_notifications:
            self._stats.notifications_dropped += 1
        else:
            self._notifier.enqueue(tracking, op)

    async def _step(self) -> None:
        await asyncio.sleep(self._faults.step_delay_ms / 1000)

    def _succeed(self, tracking: Tracking) -> None:
        tracking.operation_status = OperationStatus.SUCCESSFUL
        tracking.end_time = tracking.end_time or now_iso()

    async def _run(self, tracking: Tracking) -> None:
        try:
            await self._step()
            if tracking.tracking_type == "SHIPMENT":
                self._emit(tracking)  # PENDING: the parcel is registered, no carrier event yet
                assert tracking.shipment is not None
                for shipment_status in self._settings.shipment_statuses:
                    await self._step()
                    tracking.shipment = {
                        **tracking.shipment,
                        "status": shipment_status,
                        "message": SHIPMENT_MESSAGES.get(shipment_status, shipment_status),
                    }
                    self._succeed(tracking)
                    self._emit(tracking)
                return
            if tracking.tracking_type == "RETURN" and tracking.shipment is not None:
                tracking.shipment = {
                    **tracking.shipment,
                    "status": "Returned",
                    "message": SHIPMENT_MESSAGES["Returned"],
                }
            self._succeed(tracking)
            self._emit(tracking)
        finally:
            tracking.finished = True
            self._notifier.close(tracking)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("tracking simulation failed", exc_info=task.exception())

    def running(self) -> int:
        return len(self._tasks)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def forget(self) -> None:
        await self.stop()
        self._latest.clear()
        self._all.clear()
        self._seen.clear()
