"""Card orders: validation, idempotency and the per-card "current operation".

Idempotency follows the emulator choice in card-order.md §15: the key is
(issuerId, cardId, issuerRequestId). Repeating a key returns the original operationId and
starts nothing new; a *different* issuerRequestId for a card whose order is still open is
a conflict (409). Once an order has finished (delivered, canceled, or a terminal failure)
the card may be ordered again.

Validation is the emulator's own reading of the contract (:mod:`emulator.validation`:
the channel's model, cross-field rules, the program configuration), first error wins.
Accepting an order and recording it happen without an ``await`` in between, so two
concurrent identical requests cannot both create an order.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from d1.order import CARD_ID_PATTERN
from d1.statuses import Operation, OperationStatus, ProductionStatus
from emulator.decryption import CardDataDecryptor
from emulator.error_codes import D1Error, ErrorCode
from emulator.scenarios import ScenarioRule, Scenarios
from emulator.stats import Stats
from emulator.validation import RequestValidator

_CARD_ID = re.compile(CARD_ID_PATTERN)


def now_iso() -> str:
    """ISO 8601 UTC with milliseconds and ``Z``, as D1 writes ``startTime``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def validate_path_ids(issuer_id: str, card_id: str) -> None:
    if len(issuer_id) != 10:
        raise D1Error(ErrorCode.FIELD_INVALID_FORMAT, "issuerId: must be exactly 10 characters")
    if not _CARD_ID.match(card_id):
        raise D1Error(ErrorCode.FIELD_INVALID_FORMAT, f"cardId: must match {CARD_ID_PATTERN}")


@dataclass
class Order:
    """One accepted PRODUCE operation and where the simulator has taken it."""

    issuer_id: str
    card_id: str
    issuer_request_id: str
    operation_id: str
    start_time: str
    correlation_id: str | None
    masked_pan: str
    fail_data_preparation: bool = False
    # What was ordered (no card data): how it is produced and where it goes.
    channel: str = "THALES"
    consumer_id: str | None = None
    shipment_type: str | None = None  # INDIVIDUAL, BULK, or None: not shipped (INSTANT, some CENTRAL)
    group_id: str | None = None
    bulk_order_id: str | None = None
    delivery_method: str | None = None
    # Sandbox only (fake data): kept so that a redirect can be observed (GET /_emulator/orders).
    delivery_address: dict[str, Any] | None = None
    scenario: ScenarioRule | None = None
    # Pull & change effects, set by emulator.pull_and_change, read by the simulator.
    cancel_requested: bool = False
    accelerated: bool = False
    changes: list[dict[str, Any]] = field(default_factory=list)
    # Set to interrupt the simulator's current pause (a change arrived).
    wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # Progress, advanced by the simulator.
    operation_status: str = OperationStatus.PENDING
    production_status: str = ProductionStatus.CARD_PROD_REQUESTED
    due_date: str | None = None
    production_site: str | None = None
    shipment: dict[str, str] | None = None
    end_time: str | None = None
    error_code: str | None = None
    error: str | None = None
    reason: str | None = None
    finished: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ships(self) -> bool:
        return self.shipment_type is not None

    @property
    def group_key(self) -> str | None:
        """The BULK container the card ships in: the second-level ``orderId`` when given, else ``groupId``."""
        if self.shipment_type != "BULK":
            return None
        if self.bulk_order_id:
            return f"order:{self.bulk_order_id}"
        return f"group:{self.group_id}" if self.group_id else None

    def snapshot(self) -> dict[str, Any]:
        """The operation object, as notifications and productionStatus carry it."""
        details: dict[str, Any] = {"status": str(self.production_status)}
        if self.reason is not None:
            details["reason"] = self.reason
        if self.due_date is not None:
            details["dueDate"] = self.due_date
        if self.production_site is not None:
            details["productionSite"] = self.production_site
        if self.shipment is not None:
            details["shipment"] = dict(self.shipment)
        op: dict[str, Any] = {
            "operationId": self.operation_id,
            "operation": Operation.PRODUCE.value,
            "status": str(self.operation_status),
            "startTime": self.start_time,
            "cardId": self.card_id,
            "issuerRequestId": self.issuer_request_id,
            "details": details,
        }
        if self.end_time is not None:
            op["endTime"] = self.end_time
        if self.error_code is not None:
            op["errorCode"] = self.error_code
            op["error"] = self.error
        return op

    def admin_view(self) -> dict[str, Any]:
        """Sandbox view (``GET /_emulator/orders``): the operation plus what was ordered and changed."""
        view = self.snapshot()
        view["_emulator"] = {
            "distributionChannel": self.channel,
            "shipmentType": self.shipment_type,
            "groupId": self.group_id,
            "orderId": self.bulk_order_id,
            "delivery": self.delivery_method,
            "deliveryAddress": self.delivery_address,
            "scenario": self.scenario.scenario if self.scenario else None,
            "accelerated": self.accelerated,
            "cancelRequested": self.cancel_requested,
            "changes": list(self.changes),
            "maskedPan": self.masked_pan,
        }
        return view

    def record(self) -> dict[str, Any]:
        """Append the current state to the history and return it."""
        op = self.snapshot()
        self.history.append(op)
        return op


@dataclass(frozen=True)
class Submission:
    order: Order
    created: bool


class OrderBook:
    """Orders by idempotency key, and the latest order of each card."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str, str], Order] = {}
        self._latest_by_card: dict[tuple[str, str], Order] = {}

    def submit(self, issuer_id: str, card_id: str, issuer_request_id: str, create: Callable[[], Order]) -> Submission:
        existing = self._by_key.get((issuer_id, card_id, issuer_request_id))
        if existing is not None:
            return Submission(existing, created=False)
        latest = self._latest_by_card.get((issuer_id, card_id))
        if latest is not None and not latest.finished:
            raise D1Error(ErrorCode.CARD_ALREADY_ORDERED)
        order = create()
        self._by_key[(issuer_id, card_id, issuer_request_id)] = order
        self._latest_by_card[(issuer_id, card_id)] = order
        return Submission(order, created=True)

    def latest(self, issuer_id: str, card_id: str) -> Order | None:
        return self._latest_by_card.get((issuer_id, card_id))

    def all(self) -> list[Order]:
        return list(self._by_key.values())

    def clear(self) -> None:
        self._by_key.clear()
        self._latest_by_card.clear()


class OrderService:
    """What the order endpoint does once the caller is authenticated."""

    def __init__(
        self,
        book: OrderBook,
        decryptor: CardDataDecryptor,
        stats: Stats,
        on_created: Callable[[Order], None],
        take_data_exception: Callable[[], bool],
        validator: RequestValidator,
        scenarios: Scenarios,
    ) -> None:
        self.book = book
        self._decryptor = decryptor
        self._stats = stats
        self._on_created = on_created
        self._take_data_exception = take_data_exception
        self._validator = validator
        self._scenarios = scenarios

    def submit(self, issuer_id: str, card_id: str, raw_body: bytes, correlation_id: str | None) -> Submission:
        request, body = self._validator.order_body(raw_body)
        card = self._decryptor.decrypt(
            request.encryptedData, check=lambda plain, track: self._validator.card(plain, track, body)
        )
        rid = request.issuerRequestId
        shipment = request.shipment

        def create() -> Order:
            return Order(
                issuer_id=issuer_id,
                card_id=card_id,
                issuer_request_id=rid,
                operation_id=str(uuid.uuid4()),
                start_time=now_iso(),
                correlation_id=correlation_id,
                masked_pan=card.masked_pan,
                fail_data_preparation=self._take_data_exception(),
                channel=request.distributionChannel,
                consumer_id=request.consumerId,
                shipment_type=shipment.type if shipment is not None else None,
                group_id=shipment.groupId if shipment is not None else None,
                bulk_order_id=shipment.orderId if shipment is not None else None,
                delivery_method=request.services.delivery,
                delivery_address=(
                    shipment.deliveryAddress.model_dump(mode="json", exclude_none=True) if shipment else None
                ),
                scenario=self._scenarios.match(card_id, request.consumerId, rid),
            )

        submission = self.book.submit(issuer_id, card_id, rid, create)
        if submission.created:
            self._stats.submissions[rid] += 1
            self._on_created(submission.order)
        else:
            self._stats.repeats[rid] += 1
        return submission

    def latest(self, issuer_id: str, card_id: str) -> Order | None:
        return self.book.latest(issuer_id, card_id)
