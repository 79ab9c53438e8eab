"""``/v1/issuers/{issuerId}/card-orders``: order a card, read it, list, follow its timeline, pull &
change. Orders go through the same edge and start path as the Python API (starter/api.py)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import ValidationError
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from contracts import card_order as api
from contracts import search_attributes as sa
from contracts.card_order import ChangeRecord, OrderView
from contracts.visibility import all_of, equals, quote, rfc3339
from d1.patterns import ISSUER_REQUEST_ID_PATTERN
from d1.validation import FieldError, InvalidOrder
from issuer_api import idempotency
from issuer_api.auth import CHANGE, READ, WRITE, Caller, requires
from issuer_api.context import ApiContext, context
from issuer_api.limits import read_json
from issuer_api.models import (
    SAMPLE_ORDER,
    CardOrderAccepted,
    CardOrderItem,
    CardOrderPage,
    CardOrderView,
    Change,
    ChangeBody,
    Links,
    Timeline,
    TimelineLine,
    ref_members,
)
from issuer_api.models import Caller as CallerOut
from issuer_api.problems import ProblemError, invalid, responses
from starter.edge import PreparedOrder
from starter.errors import ChangeRejected, OrderRefused
from starter.operations import order_timeline
from starter.same_order import ForeignStart

log = logging.getLogger("issuer_api.orders")

router = APIRouter(prefix="/v1/issuers/{issuerId}/card-orders", tags=["card orders"])
RequestId = Annotated[
    str,
    PathParam(description="The order's issuerRequestId", pattern=ISSUER_REQUEST_ID_PATTERN, examples=["req-demo-0001"]),
]
Ctx = Annotated[ApiContext, Depends(context)]
AUTH = (401, 403)


def order_path(issuer_id: str, issuer_request_id: str) -> str:
    return f"/v1/issuers/{issuer_id}/card-orders/{issuer_request_id}"


def links(issuer_id: str, issuer_request_id: str) -> Links:
    path = order_path(issuer_id, issuer_request_id)
    return Links(self=path, timeline=f"{path}/timeline")


def as_order(raw: Any, issuer_id: str) -> dict[str, Any]:
    """The body as an order of the path's issuer (``issuerId`` may be left out of the body)."""
    if not isinstance(raw, dict):
        raise invalid(InvalidOrder([FieldError("$", "an order must be a JSON object")]))
    given = raw.get("issuerId", issuer_id)
    if given != issuer_id:
        raise invalid(InvalidOrder([FieldError("$.issuerId", "must be the issuerId of the path")]))
    return {**raw, "issuerId": issuer_id}


def prepare(ctx: ApiContext, raw: dict[str, Any], caller: Caller) -> PreparedOrder:
    """Validated and encrypted for D1 by the edge (clear card data ends here), with who asked."""
    edge, timing = ctx.orders.edge, ctx.orders.timing
    try:
        if "encryptedData" in raw:
            prepared = edge.prepare_encrypted(raw, timing=timing)
        else:
            prepared = edge.prepare(raw, timing=timing)
    except InvalidOrder as err:
        raise invalid(err) from None
    return idempotency.with_memo(prepared, caller.memo(), caller.requested_by)


def accepted(prepared: PreparedOrder, requested_by: dict[str, Any] | None) -> CardOrderAccepted:
    ref = prepared.ref
    return CardOrderAccepted(
        id=prepared.workflow_id,
        **ref_members(ref),
        requestedBy=CallerOut(**requested_by) if requested_by else None,
        links=links(ref.issuer_id, ref.issuer_request_id),
    )


async def memo_of(ctx: ApiContext, workflow_id: str) -> dict[str, Any]:
    description = await ctx.orders.client.get_workflow_handle(workflow_id).describe()
    return dict(await description.memo())


async def submit(ctx: ApiContext, prepared: PreparedOrder, response: Response) -> CardOrderAccepted:
    """201 for a new order, 200 for the same request again, 409 for another request under its id
    or a card that has another open order."""
    async with ctx.gate.slot():
        try:
            submitted = await ctx.orders.submit_prepared(prepared)
        except OrderRefused as err:
            raise ProblemError(409, "card-busy", str(err)) from None
        except ForeignStart:  # the starter's own check (starter/same_order.py): another request holds the id
            raise _conflict() from None
        ref = prepared.ref
        if submitted.created:
            log.info(
                "order %s of issuer %s requested by %s", ref.issuer_request_id, ref.issuer_id, prepared_by(prepared)
            )
            response.status_code = 201
            response.headers["location"] = order_path(ref.issuer_id, ref.issuer_request_id)
            return accepted(prepared, (prepared.memo or {}).get(idempotency.REQUESTED_BY))
        memo = await memo_of(ctx, submitted.workflow_id)
    if not idempotency.same_request(memo, prepared):
        raise _conflict()
    response.status_code = 200
    response.headers["location"] = order_path(ref.issuer_id, ref.issuer_request_id)
    return accepted(prepared, memo.get(idempotency.REQUESTED_BY))


def _conflict() -> ProblemError:
    return ProblemError(
        409,
        "idempotency-conflict",
        "an order with this issuerRequestId exists with a different request; use a new issuerRequestId",
    )


def prepared_by(prepared: PreparedOrder) -> str:
    who = (prepared.memo or {}).get(idempotency.REQUESTED_BY) or {}
    return str(who.get("clientId", "?")) + (f" ({who['person']})" if who.get("person") else "")


@router.post(
    "",
    summary="Order a card",
    description=(
        "Validates the order (every problem at once), encrypts `cardData` for D1 (or checks the issuer's "
        "`encryptedData` JWE header) and starts it. Idempotent on `issuerRequestId`: the same request again "
        "answers 200 with the same body; the same id with another request answers 409."
    ),
    status_code=201,
    response_model=CardOrderAccepted,
    responses={
        200: {"description": "The same request was made before: the same order", "model": CardOrderAccepted},
        **responses(400, *AUTH, 409, 413, 429, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/CardOrderRequest"},
                    "example": SAMPLE_ORDER,
                }
            },
        }
    },
)
async def create_order(
    request: Request, response: Response, issuerId: str, ctx: Ctx, caller: Annotated[Caller, Depends(requires(WRITE))]
) -> CardOrderAccepted:
    raw = as_order(await read_json(request, ctx.settings.max_body_bytes), issuerId)
    return await submit(ctx, prepare(ctx, raw, caller), response)


def _not_found() -> ProblemError:
    return ProblemError(404, "not-found", "no such order for this issuer")


async def _view(ctx: ApiContext, issuer_id: str, issuer_request_id: str) -> OrderView:
    try:
        return await ctx.orders.status(issuer_id, issuer_request_id)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise _not_found() from None
        raise


@router.get(
    "/{issuerRequestId}",
    summary="Read an order (masked)",
    response_model=CardOrderView,
    responses=responses(400, *AUTH, 404, 429, 503),
)
async def get_order(
    issuerId: str, issuerRequestId: RequestId, ctx: Ctx, _: Annotated[Caller, Depends(requires(READ))]
) -> CardOrderView:
    async with ctx.gate.slot():
        view = await _view(ctx, issuerId, issuerRequestId)
        memo = await memo_of(ctx, view.workflow_id)
    who = memo.get(idempotency.REQUESTED_BY)
    return CardOrderView.of(view, links(issuerId, issuerRequestId), CallerOut(**who) if who else None)


@router.get(
    "/{issuerRequestId}/timeline",
    summary="An order's timeline: D1's steps and the order's milestones, in time order",
    response_model=Timeline,
    responses=responses(400, *AUTH, 404, 429, 503),
)
async def get_timeline(
    issuerId: str, issuerRequestId: RequestId, ctx: Ctx, _: Annotated[Caller, Depends(requires(READ))]
) -> Timeline:
    async with ctx.gate.slot():
        try:
            lines = await order_timeline(ctx.orders.client, issuerId, issuerRequestId)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise _not_found() from None
            raise
    return Timeline(
        id=api.workflow_id(issuerId, issuerRequestId),
        lines=[TimelineLine(at=line.at, source=line.source, text=line.text) for line in lines],  # type: ignore[arg-type]
    )


# ---- the list: cursor pagination over Temporal's visibility -------------------------------------

WorkflowStatus = Literal["Running", "Completed", "Failed", "Canceled", "Terminated", "ContinuedAsNew", "TimedOut"]
StatusFilter = Annotated[WorkflowStatus | None, Query(description="The order's workflow status")]


# RFC 3339 only (a number is no date here, whatever pydantic's lax mode would make of it).
RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
Moment = Annotated[
    str | None, Query(pattern=RFC3339, json_schema_extra={"format": "date-time"}, examples=["2026-12-07T08:00:00Z"])
]


def moment(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.year < 1970:
        raise invalid(InvalidOrder([FieldError(f"query:{name}", "must be an RFC 3339 date-time after 1970")]))
    return parsed


def list_query(issuer_id: str, **filters: Any) -> str:
    times = {
        "createdAfter": "StartTime >=",
        "createdBefore": "StartTime <",
        "closedAfter": "CloseTime >=",
        "closedBefore": "CloseTime <",
    }
    parts = [
        equals(sa.ISSUER_ID.name, issuer_id),
        f"ExecutionStatus = {quote(filters['status'])}" if filters.get("status") else None,
        equals(sa.PRODUCTION_STATUS.name, filters["productionStatus"]) if filters.get("productionStatus") else None,
        equals(sa.ORDER_OUTCOME.name, filters["outcome"]) if filters.get("outcome") else None,
        equals(sa.CARD_ID.name, filters["cardId"]) if filters.get("cardId") else None,
        *(f"{op} {quote(rfc3339(filters[name]))}" for name, op in times.items() if filters.get(name)),
    ]
    return api.orders_query(all_of(*parts))


def _cursor(query: str, token: bytes) -> str:
    """Temporal's page token, bound to the query it continues (opaque to the caller)."""
    data = {"q": hashlib.sha256(query.encode()).hexdigest()[:16], "t": base64.b64encode(token).decode()}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _token(query: str, cursor: str) -> bytes:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data["q"] == hashlib.sha256(query.encode()).hexdigest()[:16]:
            return base64.b64decode(data["t"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise invalid(InvalidOrder([FieldError("query:cursor", "not a cursor of this listing (same filters)")]))


def item(issuer_id: str, wf: WorkflowExecution) -> CardOrderItem:
    attrs = wf.typed_search_attributes
    request_id = attrs.get(sa.ISSUER_REQUEST_ID)
    status = (wf.status or WorkflowExecutionStatus.RUNNING).name.title().replace("_", "")
    return CardOrderItem(
        id=wf.id,
        issuerRequestId=request_id,
        cardId=attrs.get(sa.CARD_ID),
        status=status,
        productionStatus=attrs.get(sa.PRODUCTION_STATUS),
        shipmentStatus=attrs.get(sa.SHIPMENT_STATUS),
        outcome=attrs.get(sa.ORDER_OUTCOME),
        createdAt=wf.start_time,
        closedAt=wf.close_time,
        links=links(issuer_id, request_id or wf.id.rsplit(":", 1)[-1]),
    )


@router.get(
    "",
    summary="List orders: open ones first, newest first (cursor pagination)",
    description=(
        "Filters combine with AND. Pages follow Temporal's visibility order (open orders newest first, then "
        "closed ones most recently closed first); a cursor continues after the last order it saw, so orders "
        "created meanwhile do not shift the pages. An order that closes while a client pages may be listed "
        "again among the closed ones."
    ),
    response_model=CardOrderPage,
    responses=responses(400, *AUTH, 429, 503),
)
async def list_orders(
    issuerId: str,
    ctx: Ctx,
    _: Annotated[Caller, Depends(requires(READ))],
    status: StatusFilter = None,
    productionStatus: Annotated[str | None, Query(max_length=64, pattern="^[A-Z_]+$")] = None,
    outcome: Annotated[str | None, Query(max_length=64, pattern="^[A-Z_]+$")] = None,
    cardId: Annotated[str | None, Query(max_length=48, pattern="^[A-Za-z0-9_-]+$")] = None,
    createdAfter: Moment = None,
    createdBefore: Moment = None,
    closedAfter: Moment = None,
    closedBefore: Moment = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
) -> CardOrderPage:
    times = {"createdAfter": createdAfter, "createdBefore": createdBefore}
    times |= {"closedAfter": closedAfter, "closedBefore": closedBefore}
    query = list_query(
        issuerId,
        status=status,
        productionStatus=productionStatus,
        outcome=outcome,
        cardId=cardId,
        **{name: moment(name, value) for name, value in times.items() if value is not None},
    )
    token = _token(query, cursor) if cursor else None
    size = limit or ctx.settings.page_size
    async with ctx.gate.slot():
        pages = ctx.orders.client.list_workflows(query, page_size=size, next_page_token=token)
        try:
            await pages.fetch_next_page(page_size=size)
        except RPCError as err:
            if err.status == RPCStatusCode.INVALID_ARGUMENT:  # e.g. a date Temporal cannot compare
                raise invalid(InvalidOrder([FieldError("query", "the filters make no valid query")])) from None
            raise
    following = pages.next_page_token
    return CardOrderPage(
        data=[item(issuerId, wf) for wf in pages.current_page or []],
        nextCursor=_cursor(query, following) if following else None,
    )


# ---- pull & change -------------------------------------------------------------------------------


async def change(
    request: Request, ctx: ApiContext, caller: Caller, update: str, issuer_id: str, issuer_request_id: str
) -> Change:
    raw = await read_json(request, ctx.settings.max_body_bytes) if _has_body(request) else {}
    if not isinstance(raw, dict):
        raise invalid(InvalidOrder([FieldError("$", "must be a JSON object")]))
    try:
        body = ChangeBody.model_validate(raw)
    except ValidationError as err:
        problems = err.errors(include_input=False, include_url=False)
        raise invalid(
            InvalidOrder([FieldError("$" + "".join(f".{p}" for p in e["loc"]), e["msg"]) for e in problems])
        ) from None
    redirect = update in (api.REDIRECT_UPDATE, api.ACCELERATE_AND_REDIRECT_UPDATE)
    if redirect and body.newDeliveryAddress is None:
        raise invalid(InvalidOrder([FieldError("$.newDeliveryAddress", "required for a redirect")]))
    if not redirect and body.newDeliveryAddress is not None:
        raise invalid(InvalidOrder([FieldError("$.newDeliveryAddress", "only a redirect takes an address")]))
    address = (body.newDeliveryAddress,) if redirect else ()
    async with ctx.gate.slot():
        try:
            # CardOrders.cancel / accelerate / redirect / accelerate_and_redirect (starter/changes.py)
            record: ChangeRecord = await getattr(ctx.orders, update)(
                issuer_id, issuer_request_id, *address, note=body.note
            )
        except InvalidOrder as err:
            raise invalid(err) from None
        except ChangeRejected as err:
            raise ProblemError(409, "change-refused", err.reason) from None
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise _not_found() from None
            raise
    # The change record has no member for the caller (contracts/card_order.py): the log keeps it.
    log.info(
        "%s of order %s (issuer %s) requested by %s: change %s",
        update,
        issuer_request_id,
        issuer_id,
        caller.requested_by,
        record.change_id,
    )
    return Change.of(record, CallerOut(**caller.memo()))


def _has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers


def _change_route(update: str, path: str, summary: str) -> None:
    extra = {
        "requestBody": {
            "required": update in (api.REDIRECT_UPDATE, api.ACCELERATE_AND_REDIRECT_UPDATE),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChangeBody"}}},
        }
    }

    async def endpoint(
        request: Request,
        issuerId: str,
        issuerRequestId: RequestId,
        ctx: Ctx,
        caller: Annotated[Caller, Depends(requires(CHANGE))],
    ) -> Change:
        return await change(request, ctx, caller, update, issuerId, issuerRequestId)

    router.add_api_route(
        f"/{{issuerRequestId}}/{path}",
        endpoint,
        methods=["POST"],
        summary=summary,
        description="Answers 202 with the change record once D1 took the request; 409 with the reason when "
        "the order's state forbids it (finished, shipped, another change pending) or D1 refused it.",
        status_code=202,
        response_model=Change,
        responses=responses(400, *AUTH, 404, 409, 413, 429, 503),
        openapi_extra=extra,
        name=f"{update}_order",
    )


_change_route(api.CANCEL_UPDATE, "cancel", "Cancel an order (before shipment)")
_change_route(api.ACCELERATE_UPDATE, "accelerate", "Produce as soon as possible and ship express")
_change_route(api.REDIRECT_UPDATE, "redirect", "Ship to a new delivery address")
_change_route(api.ACCELERATE_AND_REDIRECT_UPDATE, "accelerate-and-redirect", "Accelerate and ship elsewhere")
