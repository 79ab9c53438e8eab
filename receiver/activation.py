"""D1's outbound Card Activation call: ``POST /cms/api/v1/issuers/{issuerId}/physicalCards/{cardId}/activate``.

When a cardholder activates a card, D1 calls the issuer's card management system (D: the
path, 204, idempotent; everything else is our reading, kept in d1/assumptions.py). The
receiver serves that call for the issuers it serves, behind the notifications' mutual TLS and
OAuth, so the bank need not expose its CMS to D1 (docs/operations.md, "Card activation"):

1. it finds the card's latest order; while that order runs, the order itself says how the
   activation stands against delivery (update ``check_activation``, contracts/activation.py):
   its state holds every notification that reached it before, where its search attributes
   trail by a workflow task. A closed order's search attributes are final: they say it;
2. an order not delivered yet flags the activation (a card intercepted in the post): recorded
   and counted always, refused when the program says so (``lifecycle.refuseActivationBeforeDelivery``;
   a running order records its refusal itself, and the bank is never asked);
3. otherwise it forwards the activation to the bank's CMS (receiver/cms.py) and answers D1
   204 only once the bank confirmed, D1's error answers otherwise (the bank unreachable: 503,
   which D1 retries);
4. it records the activation: a signal to the order while the order runs, and the card's
   activation record (contracts/activation.py). A repeat finds both and changes nothing (a
   running order answers a repeat with the flag it recorded first).
   The bank's systems hear of it as an event (docs/events.md): from the order, or, once the
   order has its outcome, from the activation record.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from contracts import activation as api
from contracts import card_order, messages
from contracts import search_attributes as sa
from contracts.activation import ActivationCheck, ActivationFlag, ActivationRecord
from d1.assumptions import ACTIVATION_ERRORS, ACTIVATION_MAX_BODY_BYTES
from d1.patterns import CARD_ID_PATTERN
from d1.program import load_program
from observability.metrics import ProductMetrics
from receiver.cms import BankCms, CmsAnswer
from receiver.routing import SIGNAL_RPC_TIMEOUT, temporal_unavailable
from security.bounded_body import BodyTooLarge, read_bounded
from settings import ReceiverSettings

log = logging.getLogger("receiver.activation")

ISSUER_ID_LEN = 10
CARD_ID = re.compile(CARD_ID_PATTERN)
# The carrier's final word for a delivered card (the default of OrderTiming.delivered_shipment_statuses).
DELIVERED_SHIPMENT_STATUSES = frozenset({"Delivered"})
# The order's answer waits for one workflow task of it: longer than a signal's acceptance.
CHECK_RPC_TIMEOUT = timedelta(seconds=10)


def d1_error(reason: str, text: str) -> JSONResponse:
    """One of D1's error answers (d1/assumptions.py: ACTIVATION_ERRORS)."""
    status, code = ACTIVATION_ERRORS[reason]
    headers = {"Retry-After": "30"} if status == 503 else None
    return JSONResponse({"errorCode": code, "error": text}, status_code=status, headers=headers)


class CheckRefused(Exception):
    """The order refused the receiver's ``check_activation`` message (workflows/messages.py):
    outside its validity window (the receiver's clock) or sealed with another role's key."""


@dataclass(frozen=True)
class OrderStanding:
    workflow_id: str
    running: bool
    delivered: bool
    stage: str
    issuer_request_id: str | None = None
    ended: bool = False  # it has its outcome: closed, or closing (it may not announce news any more)


class ActivationService:
    def __init__(self, client: Client, task_queue: str, cms: BankCms, *, program_file: Path) -> None:
        self._client = client
        self._task_queue = task_queue
        self._cms = cms
        self._program_file = program_file
        self.metrics = ProductMetrics.for_client(client)

    @classmethod
    def from_settings(cls, settings: ReceiverSettings, client: Client, task_queue: str) -> ActivationService | None:
        """None without ``RECEIVER_CMS_ACTIVATION_URL``: the route is then not served."""
        cms = BankCms.from_settings(settings)
        load_program(settings.program_file)  # a broken program file stops the start, not the first call
        return None if cms is None else cls(client, task_queue, cms, program_file=settings.program_file)

    async def aclose(self) -> None:
        await self._cms.aclose()

    async def activate(self, issuer_id: str, card_id: str) -> Response:
        """D1's answer for one activation call (already authenticated)."""
        activated_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        refuse = load_program(self._program_file).lifecycle.refuseActivationBeforeDelivery
        check = ActivationCheck(
            issuer_id=issuer_id, card_id=card_id, activated_at=activated_at, refuse_before_delivery=refuse
        )
        try:
            order, flag, on_order = await self._decide(check)
        except CheckRefused as err:
            # Ours to mend, not D1's: D1 retries meanwhile, so the activation is not lost.
            self.metrics.receiver_error(issuer_id, "message_refused")
            log.error(
                "the card's order refused the receiver's activation check, answering 503 so that D1 "
                "retries (the receiver's clock or its sealing key is wrong): %s",
                err,
            )
            return d1_error("unavailable", "the card's order cannot check this activation right now")
        except Exception as err:
            return self._temporal_problem(issuer_id, err)
        if order is not None and flag != ActivationFlag.ACTIVATED:
            log.warning(
                "activation of card %s (issuer %s) before delivery: order %s at %s; %s",
                card_id,
                issuer_id,
                order.workflow_id,
                order.stage,
                "refused (program)" if flag == ActivationFlag.REFUSED_BEFORE_DELIVERY else "forwarded, flagged",
            )
        record = ActivationRecord(
            issuer_id=issuer_id,
            card_id=card_id,
            activated_at=activated_at,
            flag=flag,
            order_workflow_id=order.workflow_id if order else None,
            order_stage=order.stage if order else None,
            issuer_request_id=order.issuer_request_id if order else None,
        )
        if flag == ActivationFlag.REFUSED_BEFORE_DELIVERY:
            problem = await self._record(record, order, signal=not on_order)
            self.metrics.activation(issuer_id, flag.value.lower())
            return problem or d1_error("not_delivered", f"card {card_id} has not been delivered yet")
        result = await self._cms.activate(issuer_id, card_id, activated_at=activated_at)
        if result.answer != CmsAnswer.CONFIRMED:
            self.metrics.activation(issuer_id, f"cms_{result.answer.value}")
            log.warning("activation of card %s (issuer %s) not confirmed: %s", card_id, issuer_id, result.detail)
            reason = {CmsAnswer.CARD_UNKNOWN: "card_unknown", CmsAnswer.REFUSED: "refused"}.get(result.answer)
            return d1_error(reason or "unavailable", result.detail)
        record = record.model_copy(update={"cms_reference": result.reference})
        problem = await self._record(record, order)
        if problem is not None:
            return problem  # the bank confirmed; D1's retry is confirmed again (same idempotency key)
        self.metrics.activation(issuer_id, flag.value.lower())
        return Response(status_code=204)

    async def _decide(self, check: ActivationCheck) -> tuple[OrderStanding | None, ActivationFlag, bool]:
        """The card's order, the activation's flag, and whether the order recorded it already
        (a refusal it decided itself)."""
        order = await self._standing(check.issuer_id, check.card_id)
        if order is not None and order.running:
            flag = await self._ask_order(order, check)
            if flag is not None:
                # Its stage as of the update: the workflow task that answered carried the search
                # attributes of every notification before it.
                order = await self._described(order.workflow_id)
                return order, flag, flag == ActivationFlag.REFUSED_BEFORE_DELIVERY
            # It closed meanwhile: its search attributes are final now.
            order = await self._standing(check.issuer_id, check.card_id)
        if order is None or order.delivered:
            return order, ActivationFlag.ACTIVATED, False
        refused = ActivationFlag.REFUSED_BEFORE_DELIVERY
        return order, refused if check.refuse_before_delivery else ActivationFlag.BEFORE_DELIVERY, False

    async def _ask_order(self, order: OrderStanding, check: ActivationCheck) -> ActivationFlag | None:
        """The running order's flag (update ``check_activation``); None once it closed. The result
        is sealed for readers, which the receiver is not: the outcome tells (contracts/activation.py)."""
        handle = self._client.get_workflow_handle(order.workflow_id)
        try:
            await handle.execute_update(api.CHECK_UPDATE, check, rpc_timeout=CHECK_RPC_TIMEOUT)
        except WorkflowUpdateFailedError as err:
            failure = err.cause.type if isinstance(err.cause, ApplicationError) else None
            if failure == messages.MESSAGE_REFUSED:
                raise CheckRefused(str(err.cause)) from err
            flag = api.decided_flag(failure)
            if flag is None:
                raise
            return flag
        except WorkflowUpdateRPCTimeoutOrCancelledError as err:
            raise TimeoutError("the card's order did not answer in time") from err  # 503: D1 retries
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return None
        return ActivationFlag.ACTIVATED

    async def _standing(self, issuer_id: str, card_id: str) -> OrderStanding | None:
        """The card's order: the running one, else the latest, and its stage (search attributes)."""
        best: tuple[bool, datetime, str] | None = None
        query = card_order.orders_query(card_order.card_query(card_id, issuer_id))
        async for wf in self._client.list_workflows(query, limit=20):
            candidate = (wf.status == WorkflowExecutionStatus.RUNNING, wf.start_time, wf.id)
            if best is None or candidate[:2] > best[:2]:
                best = candidate
        if best is None:
            return None
        return await self._described(best[2])

    async def _described(self, workflow_id: str) -> OrderStanding:
        """One order's standing from its search attributes."""
        # Read from Temporal itself (describe), not from visibility, which may trail the last
        # upsert; the order's view is not read: its payload is the worker's, not the receiver's.
        described = await self._client.get_workflow_handle(workflow_id).describe(rpc_timeout=SIGNAL_RPC_TIMEOUT)
        running = described.status == WorkflowExecutionStatus.RUNNING
        attrs = described.typed_search_attributes
        outcome, shipment = attrs.get(sa.ORDER_OUTCOME), attrs.get(sa.SHIPMENT_STATUS)
        production = attrs.get(sa.PRODUCTION_STATUS)
        delivered = outcome == card_order.Outcome.DELIVERED or shipment in DELIVERED_SHIPMENT_STATUSES
        stage = api.stage_line(outcome, production, shipment)
        return OrderStanding(
            workflow_id=workflow_id,
            running=running,
            delivered=delivered,
            stage=stage,
            issuer_request_id=attrs.get(sa.ISSUER_REQUEST_ID),
            ended=outcome is not None,
        )

    async def _record(
        self, record: ActivationRecord, order: OrderStanding | None, *, signal: bool = True
    ) -> Response | None:
        """On the order (while it runs; ``signal`` false: the order recorded it already) and as
        the card's activation record; None once both are done, else D1's answer (Temporal
        unreachable: 503, D1 retries)."""
        try:
            if order is not None and order.running and not signal:
                record = record.model_copy(update={"order_announces": not order.ended})
            elif order is not None and order.running:
                handle = self._client.get_workflow_handle(order.workflow_id)
                try:
                    await handle.signal(api.ACTIVATED_SIGNAL, record, rpc_timeout=SIGNAL_RPC_TIMEOUT)
                except RPCError as err:
                    if err.status != RPCStatusCode.NOT_FOUND:
                        raise  # closed meanwhile: the activation record below keeps it, and announces it
                else:
                    # Before its outcome the order announces it; past it, the record does (same event id).
                    record = record.model_copy(update={"order_announces": not order.ended})
            await self._start_record(record)
        except Exception as err:
            return self._temporal_problem(record.issuer_id, err)
        return None

    async def _start_record(self, record: ActivationRecord) -> None:
        workflow_id = api.workflow_id(record.issuer_id, record.card_id)
        try:
            described = await self._client.get_workflow_handle(workflow_id).describe(rpc_timeout=SIGNAL_RPC_TIMEOUT)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        else:
            if not api.supersedes(record.flag, described.typed_search_attributes.get(sa.ACTIVATION)):
                return  # a repeat of D1's call: recorded already
        attributes = TypedSearchAttributes(
            [
                SearchAttributePair(sa.ISSUER_ID, record.issuer_id),
                SearchAttributePair(sa.CARD_ID, record.card_id),
                SearchAttributePair(sa.ACTIVATED_AT, datetime.fromisoformat(record.activated_at)),
                SearchAttributePair(sa.ACTIVATION, [record.flag.value]),
            ]
        )
        try:
            await self._client.start_workflow(
                api.WORKFLOW_TYPE,
                record.model_copy(update={"kind": messages.CARD_ACTIVATION_START}),
                id=workflow_id,
                task_queue=self._task_queue,
                # A refusal before delivery, then the activation once delivered: a new run.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=attributes,
                static_summary=f"Activation of card {record.card_id}: {record.flag.value}",
                rpc_timeout=SIGNAL_RPC_TIMEOUT,
            )
        except WorkflowAlreadyStartedError:
            pass

    def _temporal_problem(self, issuer_id: str, err: Exception) -> Response:
        if not temporal_unavailable(err):
            raise err
        self.metrics.receiver_error(issuer_id, "temporal_unavailable")
        log.error("Temporal unavailable during an activation, answering 503 so that D1 retries: %s", err)
        return d1_error("unavailable", "the card's order cannot be read right now")


async def activation_endpoint(request: Request, service: ActivationService) -> Response:
    """After authentication (receiver/app.py): the path's ids, an optional JSON body."""
    issuer_id, card_id = request.path_params["issuerId"], request.path_params["cardId"]
    if len(issuer_id) != ISSUER_ID_LEN:
        return d1_error("bad_request", "issuerId")
    if not CARD_ID.match(card_id):
        return d1_error("bad_request", "cardId")
    try:
        raw = await read_bounded(request, ACTIVATION_MAX_BODY_BYTES)
    except BodyTooLarge:
        return d1_error("bad_request", "body")
    if raw.strip():
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return d1_error("bad_request", "body")  # D1 documents no members: any object is accepted
    return await service.activate(issuer_id, card_id)
