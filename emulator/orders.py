"""Card orders (single and batch): validation, idempotency and the per-card "current operation".

Idempotency is the emulator's choice (D1 only says to reuse a stable key such as
``issuerRequestId``): the key is (issuerId, cardId, issuerRequestId). Repeating a key
returns the original operationId and starts nothing new; a *different* issuerRequestId
for a card whose order is still open is a conflict (409, ``CARD_ALREADY_ORDERED``). Once an
order has finished (delivered, canceled, or a terminal failure) the card may be ordered
again. ``issuerRequestId`` is conditional for D1: an order without one is correlated by
cardId alone (a repeat while the card's order without issuerRequestId is open answers
that order; its notifications carry no issuerRequestId).

The batch "Order cards" API applies exactly the same rules to each item, in request
order, through the same book: a card already accepted (by either API) answers its existing
operationId; each accepted card starts one production simulation (see
``d1/assumptions.py`` for the response shape).

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

from d1.issues import Path
from d1.patterns import CARD_ID_PATTERN, ISSUER_REQUEST_ID_PATTERN
from d1.statuses import Operation, OperationStatus, ProductionStatus
from emulator.bodies import D1CardFields
from emulator.decryption import CardDataDecryptor
from emulator.error_codes import D1Error, ErrorCode
from emulator.scenarios import ScenarioRule, Scenarios
from emulator.stats import Stats, Via
from emulator.validation import RequestValidator, json_path

_CARD_ID = re.compile(CARD_ID_PATTERN)
_ISSUER_REQUEST_ID = re.compile(ISSUER_REQUEST_ID_PATTERN)
# Let other requests in between batch items (each item is still accepted atomically).
YIELD_EVERY_ITEMS = 20


def now_iso() -> str:
    """ISO 8601 UTC with milliseconds and ``Z``, as D1 writes ``startTime``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def validate_path_ids(issuer_id: str, card_id: str | None) -> None:
    if len(issuer_id) != 10:
        raise D1Error(ErrorCode.FIELD_INVALID_FORMAT, "issuerId", reason="must be exactly 10 characters")
    if card_id is not None and not _CARD_ID.match(card_id):
        raise D1Error(ErrorCode.FIELD_INVALID_FORMAT, "cardId", reason=f"must match {CARD_ID_PATTERN}")


def _well_formed(value: Any, pattern: re.Pattern[str]) -> str | None:
    """An identifier from the body, only when well-formed (anything else is not echoed)."""
    return value if isinstance(value, str) and pattern.match(value) else None


@dataclass
class Order:
    """One accepted PRODUCE operation and where the simulator has taken it."""

    issuer_id: str
    card_id: str
    # None: the order came without one (conditional for D1); it is correlated by cardId.
    issuer_request_id: str | None
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
    # What kind of card it is (CREATION, RENEWAL, REPLACEMENT), the card it replaces, its carrier.
    issuance: str | None = None
    old_card_id: str | None = None
    card_product_id: str | None = None
    card_carrier: str | None = None
    scenario: ScenarioRule | None = None
    # Which API the order came through, and the inputFileName its notifications carry.
    via: Via = "single"
    input_file_name: str | None = None
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

    def operation_head(self, operation_id: str, operation: str, status: str, start_time: str) -> dict[str, Any]:
        """The members every operation about this order starts with (PRODUCE, UPDATE_ORDER)."""
        op: dict[str, Any] = {
            "operationId": operation_id,
            "operation": operation,
            "status": status,
            "startTime": start_time,
            "cardId": self.card_id,
        }
        if self.issuer_request_id is not None:
            op["issuerRequestId"] = self.issuer_request_id
        if self.input_file_name is not None:
            op["inputFileName"] = self.input_file_name
        return op

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
        op = self.operation_head(
            self.operation_id, Operation.PRODUCE.value, str(self.operation_status), self.start_time
        )
        op["details"] = details
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
            "via": self.via,
            "shipmentType": self.shipment_type,
            "groupId": self.group_id,
            "orderId": self.bulk_order_id,
            "delivery": self.delivery_method,
            "deliveryAddress": self.delivery_address,
            "scenario": self.scenario.scenario if self.scenario else None,
            "issuance": self.issuance,
            "oldCardId": self.old_card_id,
            "cardProductId": self.card_product_id,
            "cardCarrier": self.card_carrier,
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
        self._all: list[Order] = []

    def submit(
        self, issuer_id: str, card_id: str, issuer_request_id: str | None, create: Callable[[], Order]
    ) -> Submission:
        if issuer_request_id is not None:
            existing = self._by_key.get((issuer_id, card_id, issuer_request_id))
            if existing is not None:
                return Submission(existing, created=False)
        latest = self._latest_by_card.get((issuer_id, card_id))
        if latest is not None and not latest.finished:
            if issuer_request_id is None and latest.issuer_request_id is None:
                return Submission(latest, created=False)  # correlated by cardId
            raise D1Error(ErrorCode.CARD_ALREADY_ORDERED)
        order = create()
        if issuer_request_id is not None:
            self._by_key[(issuer_id, card_id, issuer_request_id)] = order
        self._latest_by_card[(issuer_id, card_id)] = order
        self._all.append(order)
        return Submission(order, created=True)

    def latest(self, issuer_id: str, card_id: str) -> Order | None:
        return self._latest_by_card.get((issuer_id, card_id))

    def all(self) -> list[Order]:
        return list(self._all)

    def clear(self) -> None:
        self._by_key.clear()
        self._latest_by_card.clear()
        self._all.clear()


class OrderService:
    """What the order endpoints (single and batch) do once the caller is authenticated."""

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
        """The single order endpoint: the card is in the path."""
        rid: str | None = None
        try:
            request, body = self._validator.order_body(raw_body)
            rid = request.issuerRequestId
            return self._accept(issuer_id, card_id, request, body, correlation_id, via="single")
        except D1Error:
            self._stats.refused(card_id, rid, "single")
            raise

    async def submit_batch(self, issuer_id: str, raw_body: bytes, correlation_id: str | None) -> list[dict[str, Any]]:
        """The batch endpoint: one entry per item, in request order (a malformed envelope raises)."""
        cards = self._validator.batch_envelope(raw_body)
        self._stats.batch_cards += len(cards)
        template = self._validator.interface.batchInputFileName
        file_name = template.replace("{batchId}", correlation_id or uuid.uuid4().hex) if template else None
        entries: list[dict[str, Any]] = []
        for index, item in enumerate(cards):
            if index and index % YIELD_EVERY_ITEMS == 0:
                await asyncio.sleep(0)
            entries.append(self._batch_item(issuer_id, index, item, correlation_id, file_name))
        return entries

    def _batch_item(
        self, issuer_id: str, index: int, item: dict[str, Any], correlation_id: str | None, file_name: str | None
    ) -> dict[str, Any]:
        card_id = _well_formed(item.get("cardId"), _CARD_ID)
        rid = _well_formed(item.get("issuerRequestId"), _ISSUER_REQUEST_ID)
        entry: dict[str, Any] = {}
        if card_id is not None:
            entry["cardId"] = card_id
        if rid is not None:
            entry["issuerRequestId"] = rid
        prefix: Path = ("cards", index)
        try:
            request = self._validator.order_fields(item, single=False, prefix=prefix)
            assert card_id is not None  # the item's model requires a well-formed cardId
            submission = self._accept(
                issuer_id, card_id, request, item, correlation_id, via="batch", input_file_name=file_name, prefix=prefix
            )
        except D1Error as exc:
            self._stats.refused(card_id, rid, "batch")
            entry.update(exc.body())
            return entry
        entry["operationId"] = submission.order.operation_id
        return entry

    def _accept(
        self,
        issuer_id: str,
        card_id: str,
        request: D1CardFields,
        body: dict[str, Any],
        correlation_id: str | None,
        *,
        via: Via,
        input_file_name: str | None = None,
        prefix: Path = (),
    ) -> Submission:
        """Decrypt, check, then accept or repeat: no ``await`` from the check to the record."""
        card = self._decryptor.decrypt(
            request.encryptedData,
            check=lambda plain, track: self._validator.card(plain, track, body, prefix),
            prefix=prefix,
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
                issuance=request.services.issuance,
                old_card_id=getattr(request, "oldCardId", None),
                card_product_id=request.cardProductId,
                card_carrier=request.services.cardCarrier,
                scenario=self._scenarios.match(card_id, request.consumerId, rid),
                via=via,
                input_file_name=input_file_name,
            )

        try:
            submission = self.book.submit(issuer_id, card_id, rid, create)
        except D1Error as exc:
            if prefix and exc.code == ErrorCode.CARD_ALREADY_ORDERED:
                raise D1Error(exc.code, json_path(("cardId",), prefix)) from None
            raise
        if submission.created:
            self._stats.accepted(card_id, rid, via)
            self._on_created(submission.order)
        else:
            self._stats.repeated(card_id, rid, via)
        return submission

    def latest(self, issuer_id: str, card_id: str) -> Order | None:
        return self.book.latest(issuer_id, card_id)
