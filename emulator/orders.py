"""Card orders: validation, idempotency and the per-card "current operation".

Idempotency follows the emulator choice in card-order.md §15: the key is
(issuerId, cardId, issuerRequestId). Repeating a key returns the original operationId and
starts nothing new; a *different* issuerRequestId for a card whose order is still open is
a conflict (409). Once an order has finished (delivered, or a terminal failure) the card
may be ordered again.

Accepting an order and recording it happen without an ``await`` in between, so two
concurrent identical requests cannot both create an order.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from d1.order import CARD_ID_PATTERN, D1OrderRequest
from d1.statuses import Operation, OperationStatus, ProductionStatus
from emulator.decryption import CardDataDecryptor
from emulator.error_codes import D1Error, ErrorCode
from emulator.stats import Stats
from emulator.validation import to_d1_error

_CARD_ID = re.compile(CARD_ID_PATTERN)
# Members that would mean clear card data travels outside encryptedData.
_CLEAR_CARD_DATA_MEMBERS = ("pan", "cvv2", "cvv1", "pvv", "cardData")


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


def parse_order_body(raw: bytes) -> D1OrderRequest:
    """Validate the JSON body against the shared contract model; first error wins."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise D1Error(ErrorCode.FIELD_INVALID_FORMAT, "$: body is not valid JSON") from None
    if not isinstance(body, dict):
        raise D1Error(ErrorCode.FIELD_INVALID_FORMAT, "$: body must be a JSON object")
    for member in _CLEAR_CARD_DATA_MEMBERS:
        if member in body:
            raise D1Error(ErrorCode.FIELD_INVALID_FORMAT, f"{member}: card data must travel inside encryptedData")
    try:
        return D1OrderRequest.model_validate(body)
    except ValidationError as exc:
        raise to_d1_error(exc) from None


class OrderService:
    """What the order endpoint does once the caller is authenticated."""

    def __init__(
        self,
        book: OrderBook,
        decryptor: CardDataDecryptor,
        stats: Stats,
        on_created: Callable[[Order], None],
        take_data_exception: Callable[[], bool],
    ) -> None:
        self.book = book
        self._decryptor = decryptor
        self._stats = stats
        self._on_created = on_created
        self._take_data_exception = take_data_exception

    def submit(self, issuer_id: str, card_id: str, raw_body: bytes, correlation_id: str | None) -> Submission:
        request = parse_order_body(raw_body)
        card = self._decryptor.decrypt(request.encryptedData)
        rid = request.issuerRequestId

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
