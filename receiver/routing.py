"""Turning one D1 operation update into a signal on the right order workflow.

Routing is by ``issuerRequestId`` (it is the idempotency key, so the workflow id follows
from it directly); without one, by ``cardId`` through a visibility query. An update for
an order that is closed or unknown is acknowledged and *recorded* (log line with ids only,
counter), never dropped silently and never answered with an error that would make D1
retry forever.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from contracts import card_order, card_tracking, orphan_inbox
from contracts.card_order import workflow_id as workflow_id_for
from contracts.orphan_inbox import OrphanEntry, OrphanInbox
from contracts.visibility import equals, of_type
from d1.notifications import OperationNotification
from d1.statuses import Operation
from observability.logs import bind_workflow_id, log_safe
from observability.metrics import ProductMetrics
from observability.names import ATTR_DELIVERY
from observability.tracing import notification_operation_span

log = logging.getLogger("receiver.routing")

SIGNAL_RPC_TIMEOUT = timedelta(seconds=5)


class Delivery(StrEnum):
    SIGNALED = "signaled"
    CLOSED = "closed_or_unknown"  # acknowledged, recorded as late/orphan


class TemporalUnavailable(Exception):
    """The receiver answers 503 so that D1 retries."""


# Statuses that mean "Temporal is down, overloaded or slow", not "our request is wrong".
_UNAVAILABLE = {
    RPCStatusCode[s] for s in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "CANCELLED", "ABORTED")
}


def temporal_unavailable(err: BaseException) -> bool:
    """Anything else is a bug or a misconfiguration, logged with its traceback (500)."""
    if isinstance(err, RPCError):
        return err.status in _UNAVAILABLE
    if isinstance(err, TimeoutError | ConnectionError):
        return True
    # The SDK's lazy client reports an unreachable server this way.
    return isinstance(err, RuntimeError) and str(err).startswith("Failed client connect")


def _operation_fields(op: OperationNotification) -> dict[str, Any]:
    return {
        "card_id": op.cardId,
        "issuer_request_id": op.request_id,
        "operation_id": op.operationId,
        "operation": op.operation,
        "production_status": op.production_status,
        "shipment_status": op.shipment.status if op.shipment else None,
    }


@dataclass
class RoutingStats:
    received: int = 0
    signaled: int = 0
    orphaned: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)
    orphans: list[dict[str, str | None]] = field(default_factory=list)

    def record_orphan(self, entry: OrphanEntry) -> None:
        self.orphaned += 1
        self.orphans.append(
            {
                "issuerId": entry.issuer_id,
                "cardId": entry.card_id,
                "issuerRequestId": entry.issuer_request_id,
                "operationId": entry.operation_id,
                "operation": entry.operation,
                "status": entry.production_status,
                "reason": entry.reason,
            }
        )
        del self.orphans[:-1000]  # keep the most recent ones in memory; the log has all
        log.warning(
            "notification for a closed or unknown order recorded: issuerId=%s cardId=%s issuerRequestId=%s "
            "operationId=%s status=%s (%s)",
            log_safe(entry.issuer_id),
            log_safe(entry.card_id),
            log_safe(entry.issuer_request_id),
            log_safe(entry.operation_id),
            entry.production_status,
            entry.reason,
        )


class NotificationRouter:
    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue
        self.stats = RoutingStats()
        self.metrics = ProductMetrics.for_client(client)

    @property
    def client(self) -> Client:
        return self._client

    @property
    def task_queue(self) -> str:
        return self._task_queue

    async def _workflow_id_by_card(self, issuer_id: str, card_id: str, *, workflow_type: str) -> str | None:
        query = of_type(workflow_type, f"{equals('IssuerId', issuer_id)} AND {equals('CardId', card_id)}")
        best: tuple[int, object, str] | None = None
        async for wf in self._client.list_workflows(query, limit=20):
            running = 1 if wf.status is not None and wf.status.name == "RUNNING" else 0
            candidate = (running, wf.start_time, wf.id)
            if best is None or candidate[:2] > best[:2]:  # type: ignore[operator]
                best = candidate
        return best[2] if best else None

    async def _workflow_id(self, issuer_id: str, op: OperationNotification) -> str | None:
        """A tracking-hub update goes to the card's tracking of that type; anything else to the
        order of its issuerRequestId, or, without one, to the card's most recent order."""
        if op.operation == Operation.STANDALONE_TRACKING:
            tracking_type = op.details.trackingType if op.details else None
            if tracking_type in card_tracking.TRACKING_TYPES:
                return card_tracking.workflow_id(issuer_id, op.cardId, str(tracking_type))
            return await self._workflow_id_by_card(issuer_id, op.cardId, workflow_type=card_tracking.WORKFLOW_TYPE)
        if op.request_id:
            return workflow_id_for(issuer_id, op.request_id)
        return await self._workflow_id_by_card(issuer_id, op.cardId, workflow_type=card_order.WORKFLOW_TYPE)

    async def deliver(self, issuer_id: str, op: OperationNotification) -> Delivery:
        self.metrics.notification_received(issuer_id, op.operation)
        with (
            bind_workflow_id(workflow_id_for(issuer_id, op.request_id) if op.request_id else None),
            notification_operation_span(issuer_id, **_operation_fields(op)) as span,
        ):
            delivery = await self._route(issuer_id, op)
            span.set_attribute(ATTR_DELIVERY, delivery.value)
            return delivery

    async def _route(self, issuer_id: str, op: OperationNotification) -> Delivery:
        self.stats.received += 1
        self.stats.by_operation[op.operation] = self.stats.by_operation.get(op.operation, 0) + 1
        try:
            workflow_id = await self._workflow_id(issuer_id, op)
            if workflow_id is None:
                await self._record_orphan(issuer_id, op, orphan_inbox.REASON_NO_ORDER)
                return Delivery.CLOSED
            handle = self._client.get_workflow_handle(workflow_id)
            try:
                notification = card_order.Notification(operation=op)
                await handle.signal(card_order.NOTIFICATION_SIGNAL, notification, rpc_timeout=SIGNAL_RPC_TIMEOUT)
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                await self._record_orphan(issuer_id, op, orphan_inbox.REASON_CLOSED)
                return Delivery.CLOSED
        except Exception as err:
            if temporal_unavailable(err):
                status = err.status.name if isinstance(err, RPCError) and err.status else type(err).__name__
                raise TemporalUnavailable(status) from err
            raise  # a bug or a misconfiguration: the app logs it with its traceback (500)
        self.stats.signaled += 1
        return Delivery.SIGNALED

    async def _record_orphan(self, issuer_id: str, op: OperationNotification, reason: str) -> None:
        entry = OrphanEntry(
            issuer_id=issuer_id,
            **_operation_fields(op),
            operation_status=op.status,
            reason=reason,
            received_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )
        self.stats.record_orphan(entry)
        await self._count_orphan(issuer_id, op, signal_refused=reason != orphan_inbox.REASON_NO_ORDER)
        await self._client.start_workflow(
            orphan_inbox.WORKFLOW_TYPE,
            OrphanInbox(),
            id=orphan_inbox.workflow_id(issuer_id),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=orphan_inbox.RECORD_SIGNAL,
            start_signal_args=[entry],
            static_summary=f"Notifications for closed or unknown orders of issuer {issuer_id}",
            rpc_timeout=SIGNAL_RPC_TIMEOUT,
        )

    async def _count_orphan(self, issuer_id: str, op: OperationNotification, *, signal_refused: bool) -> None:
        """Metrics tell *late* (the order exists but has ended) from *unknown* (never started)."""
        late = signal_refused and not op.request_id  # found by its card: it exists, and it is closed
        if op.request_id:
            with contextlib.suppress(RPCError):
                await self._client.get_workflow_handle(workflow_id_for(issuer_id, op.request_id)).describe(
                    rpc_timeout=SIGNAL_RPC_TIMEOUT
                )
                late = True
        if late:
            self.metrics.notification_late(issuer_id)
        else:
            self.metrics.notification_unknown(issuer_id)
