"""Pull & change: cancel, accelerate or redirect an order that is not yet shipped.

D1 forwards the request to the personalization center, which accepts or refuses it
depending on the production stage; the outcome arrives asynchronously as an
``UPDATE_ORDER`` notification. Path and payload are undocumented; the emulator's
choices (G, the path in :mod:`d1.assumptions` ``pullAndChangePath``, the body in
:mod:`emulator.bodies`):

* ``POST {banking}/issuers/{issuerId}/physicalCards/{cardId}/operations:pullAndChange``
  with ``{"type": "CANCEL" | "ACCELERATE" | "REDIRECT" | "ACCELERATE_AND_REDIRECT",
  "newDeliveryAddress": {...}}`` (the address only, and then required, for the redirects);
  ``202 {"operationId"}``; 400 (invalid body, disallowed country), 401, 403, 404 (no order
  for the card).
* The same ``x-correlation-id`` for the same card is an idempotent repeat: the original
  operationId, nothing new (a client retry after a timeout must not cancel twice).
* The center accepts while the card has not passed the stage configured per type
  (``EMULATOR_PULL_AND_CHANGE_LAST_STAGE``; default: CANCEL up to CARD_PROD_DONE, ACCELERATE
  up to CARD_PROD_ONGOING, the redirects before CARD_PROD_ONGOING, when the carrier is
  printed). It refuses an order already finished, a card already being canceled, and a
  redirect of a card in a BULK container.
* The outcome, on the order's notification stream (so after its earlier updates)::

    {"operationId": "<pull & change operationId>", "operation": "UPDATE_ORDER",
     "status": "SUCCESSFUL" | "FAILED", "startTime": ..., "endTime": ..., "cardId": ...,
     ["issuerRequestId": "<the order's, if it had one>",] ["errorCode": "EMU_UPDATE_REFUSED", "error": ...,]
     "details": {"type": "CANCEL", "status": "ACCEPTED" | "REFUSED", "reason": ...,
                 "productionStatus": "<stage when the center decided>"}}

  An accepted CANCEL is followed by the PRODUCE update CARD_PROD_CANCELED.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from d1.patterns import REDIRECTING_TYPES
from d1.statuses import PRODUCTION_RANK, TERMINAL_PRODUCTION_STATUSES, Operation, OperationStatus
from emulator.config import EmulatorSettings
from emulator.error_codes import ERRORS, D1Error, ErrorCode
from emulator.faults import Faults
from emulator.notifier import Notifier
from emulator.orders import Order, OrderBook, now_iso
from emulator.stats import Stats
from emulator.validation import RequestValidator

log = logging.getLogger(__name__)

KEEP_KEYS = 100_000


class PullAndChangeService:
    def __init__(
        self,
        settings: EmulatorSettings,
        book: OrderBook,
        validator: RequestValidator,
        stats: Stats,
        faults: Faults,
        notifier: Notifier,
        emit: Callable[[Order, dict[str, Any]], None],
    ) -> None:
        self._settings = settings
        self._book = book
        self._validator = validator
        self._stats = stats
        self._faults = faults
        self._notifier = notifier
        self._emit = emit
        self._seen: dict[tuple[str, str, str], str] = {}
        self._late: set[asyncio.Task[None]] = set()

    def request(self, issuer_id: str, card_id: str, raw_body: bytes, correlation_id: str | None) -> tuple[str, bool]:
        """Validate, decide, notify. Returns (operationId, created); raises D1Error for 4xx answers."""
        req = self._validator.pull_and_change(raw_body)
        order = self._book.latest(issuer_id, card_id)
        if order is None:
            raise D1Error(ErrorCode.NOT_FOUND, "cardId", reason="no card order is known for this cardId")
        key = (issuer_id, card_id, correlation_id) if correlation_id else None
        if key is not None and key in self._seen:
            self._stats.pull_and_change_repeats += 1
            return self._seen[key], False
        self._stats.pull_and_change_requests += 1
        operation_id = str(uuid.uuid4())
        stage = str(order.production_status)
        refusal = self._refusal(order, req.type)
        address = req.newDeliveryAddress.model_dump(mode="json", exclude_none=True) if req.newDeliveryAddress else None
        if refusal is None:
            if req.type == "CANCEL":
                order.cancel_requested = True
            if req.type in ("ACCELERATE", "ACCELERATE_AND_REDIRECT"):
                order.accelerated = True
            if req.type in REDIRECTING_TYPES:
                order.delivery_address = address
            order.wake.set()
        order.changes.append(
            {
                "operationId": operation_id,
                "type": req.type,
                "accepted": refusal is None,
                "reason": refusal,
                "productionStatus": stage,
                "newDeliveryAddress": address,
                "at": now_iso(),
            }
        )
        log.info(
            "pull and change %s issuerId=%s cardId=%s type=%s at %s",
            "accepted" if refusal is None else "refused",
            issuer_id,
            card_id,
            req.type,
            stage,
        )
        self._notify(order, self._outcome(order, operation_id, req.type, stage, refusal))
        if key is not None:
            self._seen[key] = operation_id
            if len(self._seen) > KEEP_KEYS:
                self._seen.pop(next(iter(self._seen)))
        return operation_id, True

    def _refusal(self, order: Order, kind: str) -> str | None:
        status = str(order.production_status)
        if order.finished or status in TERMINAL_PRODUCTION_STATUSES:
            return f"the order is already finished ({status})"
        if order.cancel_requested:
            return "a cancellation of this order is already under way"
        if kind in REDIRECTING_TYPES and order.shipment_type == "BULK":
            return "a card in a BULK container cannot be redirected on its own"
        last = self._settings.pull_and_change_last_stage.get(kind)
        rank, last_rank = PRODUCTION_RANK.get(status, 0), PRODUCTION_RANK.get(last or "", 0)
        if rank > last_rank:
            return f"too late: the card is already at {status}"
        return None

    def _outcome(self, order: Order, operation_id: str, kind: str, stage: str, refusal: str | None) -> dict[str, Any]:
        now = now_iso()
        status = (OperationStatus.SUCCESSFUL if refusal is None else OperationStatus.FAILED).value
        op = order.operation_head(operation_id, Operation.UPDATE_ORDER.value, status, now)
        op.update(
            {
                "endTime": now,
                "details": {
                    "type": kind,
                    "status": "ACCEPTED" if refusal is None else "REFUSED",
                    "reason": refusal or f"{kind} accepted by the personalization center",
                    "productionStatus": stage,
                },
            }
        )
        if refusal is not None:
            op["errorCode"] = ErrorCode.UPDATE_REFUSED.value
            op["error"] = ERRORS[ErrorCode.UPDATE_REFUSED].default_error
        return op

    def _notify(self, order: Order, op: dict[str, Any]) -> None:
        if not order.finished:
            self._emit(order, op)  # on the order's own stream: after its earlier updates
            return
        # The order's stream is closing or closed: send on its own once the stream drained.
        if self._settings.notification_mode == "capture" or self._faults.capture_notifications:
            self._notifier.captured.append({"operations": [op]})
            self._stats.notifications_captured += 1
            return
        if self._faults.drop_notifications:
            self._stats.notifications_dropped += 1
            return
        task = asyncio.create_task(self._deliver_late(order, op), name=f"update-order-{op['operationId']}")
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def _deliver_late(self, order: Order, op: dict[str, Any]) -> None:
        while self._notifier.pending_for(order):  # noqa: ASYNC110 - no drain event to wait on
            await asyncio.sleep(0.01)
        await self._notifier.deliver_body(order, {"operations": [op]})

    async def stop(self) -> None:
        tasks = list(self._late)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def reset(self) -> None:
        self._seen.clear()
