"""``/v1/issuers/{issuerId}/webhook-endpoints`` and ``/v1/issuers/{issuerId}/events``: an issuer's
webhook endpoints and its event feed (docs/events.md), through ``events.api.WebhookEndpoints``
and ``events.feed.EventFeed``; and ``…/card-orders/{issuerRequestId}/events``, what an order sent.

Managing endpoints (and redelivering an event) needs the ``card-orders:webhooks`` scope: an
endpoint decides where the issuer's events go, a right an issuer gives to fewer systems than
reading orders; the feed needs ``card-orders:read``. Every call is for the path's issuer, which
the caller must be allowed to act for (issuer_api/auth.py), and reads that issuer's hub only:
an issuer never sees another's endpoints or events. A secret is in the answer of a creation
and of a rotation only, never in a list, a log line or an error.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.service import RPCError, RPCStatusCode

from contracts import card_order as order_api
from d1.validation import FieldError, InvalidOrder
from events import contract as c
from events.api import EndpointNotFound, EndpointRefused, UnknownEventType, WebhookEndpoints
from events.catalogue import ALL_TYPES, Event
from events.feed import MAX_LIMIT, EventNotFound, parse_cursor
from issuer_api.auth import READ, WEBHOOKS, Caller, requires
from issuer_api.context import ApiContext, context
from issuer_api.limits import read_json
from issuer_api.models import Links
from issuer_api.orders import RequestId
from issuer_api.problems import ProblemError, invalid, responses

log = logging.getLogger("issuer_api.webhooks")

router = APIRouter(prefix="/v1/issuers/{issuerId}", tags=["webhooks"])
Ctx = Annotated[ApiContext, Depends(context)]
AUTH = (401, 403)
EndpointId = Annotated[
    str, PathParam(description="The endpoint's id", pattern=r"^ep_[a-z2-7]{20}$", examples=["ep_abcdefghijklmnopqrst"])
]
EventId = Annotated[
    str, PathParam(description="The event's id", pattern=r"^evt_[a-z0-9_-]{1,64}$", examples=["evt_" + "a" * 32])
]
TYPES_DESCRIPTION = "Event types of the catalogue (docs/events.md), or `*` for every type"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class EndpointRequest(_Body):
    """A new webhook endpoint: where the issuer's events go (https, a public address)."""

    url: str = Field(min_length=1, max_length=2048, examples=["https://hooks.bank.example/cards"])
    eventTypes: list[str] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=len(ALL_TYPES) + 1,
        description=TYPES_DESCRIPTION,
        examples=[["order.shipped", "order.delivered"]],
    )
    description: str | None = Field(default=None, max_length=200)


class EndpointPatch(_Body):
    """What changes on an endpoint; members left out stay as they are."""

    url: str | None = Field(default=None, min_length=1, max_length=2048)
    eventTypes: list[str] | None = Field(
        default=None, min_length=1, max_length=len(ALL_TYPES) + 1, description=TYPES_DESCRIPTION
    )
    description: str | None = Field(default=None, max_length=200)


class RedeliveryRequest(_Body):
    endpointId: str | None = Field(
        default=None, pattern=r"^ep_[a-z2-7]{20}$", description="Only this endpoint (default: every subscribed one)"
    )


class WebhookEndpoint(BaseModel):
    """An endpoint as the issuer sees it: never its secret."""

    endpointId: str
    url: str
    eventTypes: list[str]
    description: str | None = None
    status: c.EndpointStatus = Field(description="`failing`: deliveries keep failing (still retried)")
    createdAt: str
    backlog: int = Field(description="Events not yet delivered")
    failures: int = Field(description="Consecutive failed attempts")
    failingSince: str | None = None
    lastError: str | None = None
    delivered: int
    secrets: int = Field(description="Secrets that sign (two during a rotation's grace period)")
    links: Links

    @classmethod
    def of(cls, issuer_id: str, view: c.EndpointView) -> WebhookEndpoint:
        return cls(
            endpointId=view.endpoint_id,
            url=view.url,
            eventTypes=view.event_types,
            description=view.description,
            status=view.status,
            createdAt=view.created_at,
            backlog=view.backlog,
            failures=view.failures,
            failingSince=view.failing_since,
            lastError=view.last_error,
            delivered=view.delivered,
            secrets=view.secrets,
            links=Links(self=endpoint_path(issuer_id, view.endpoint_id)),
        )


class WebhookEndpointWithSecret(BaseModel):
    endpoint: WebhookEndpoint
    secret: str = Field(
        description="The signing secret (Standard Webhooks `whsec_…`): shown in this answer only",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookEndpointList(BaseModel):
    endpoints: list[WebhookEndpoint]


class EventPage(BaseModel):
    events: list[Event] = Field(description="The webhooks' bodies, in the issuer's `sequence` order")
    nextCursor: str = Field(description="Pass as `after` for what follows")
    hasMore: bool


class Redelivered(BaseModel):
    deliveredTo: list[str]
    failed: dict[str, str] = Field(description="Endpoint id: why the attempt failed")


def endpoint_path(issuer_id: str, endpoint_id: str) -> str:
    return f"/v1/issuers/{issuer_id}/webhook-endpoints/{endpoint_id}"


def endpoints_of(ctx: ApiContext) -> WebhookEndpoints:
    return WebhookEndpoints(ctx.orders.client, ctx.orders.task_queue, ctx.events_settings)


async def body_of(request: Request, ctx: ApiContext, model: type[_Body], *, optional: bool = False) -> Any:
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    raw = await read_json(request, ctx.settings.max_body_bytes) if has_body or not optional else {}
    if not isinstance(raw, dict):
        raise invalid(InvalidOrder([FieldError("$", "must be a JSON object")]))
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        problems = err.errors(include_input=False, include_url=False)
        raise invalid(
            InvalidOrder([FieldError("$" + "".join(f".{p}" for p in e["loc"]), e["msg"]) for e in problems])
        ) from None


def _refused(field: str, err: Exception) -> ProblemError:
    return invalid(InvalidOrder([FieldError(field, str(err))]))


def _not_found(what: str = "no such webhook endpoint for this issuer") -> ProblemError:
    return ProblemError(404, "not-found", what)


@contextlib.contextmanager
def _answers() -> Iterator[None]:
    """What a refusal of WebhookEndpoints (events/api.py) answers: 400 naming the member, or 404."""
    try:
        yield
    except EndpointRefused as err:
        raise _refused("$.url", err) from None
    except UnknownEventType as err:
        raise _refused("$.eventTypes", err) from None
    except EndpointNotFound:
        raise _not_found() from None


def _body_ref(name: str, *, required: bool = True) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }


# ---- endpoints -----------------------------------------------------------------------------------


@router.post(
    "/webhook-endpoints",
    summary="Register a webhook endpoint",
    description="The answer holds the endpoint's signing secret, shown this once. The URL must be `https://` "
    "to a public address (private, loopback and link-local addresses are refused unless an operator "
    "allowed the network). The endpoint receives the events emitted from now on; earlier ones are in the feed.",
    status_code=201,
    response_model=WebhookEndpointWithSecret,
    responses=responses(400, *AUTH, 413, 429, 503),
    openapi_extra=_body_ref("EndpointRequest"),
)
async def create_endpoint(
    request: Request,
    response: Response,
    issuerId: str,
    ctx: Ctx,
    caller: Annotated[Caller, Depends(requires(WEBHOOKS))],
) -> WebhookEndpointWithSecret:
    body: EndpointRequest = await body_of(request, ctx, EndpointRequest)
    async with ctx.gate.slot():
        with _answers():
            created = await endpoints_of(ctx).create(issuerId, body.url, body.eventTypes, body.description)
    endpoint = WebhookEndpoint.of(issuerId, created.endpoint)
    log.info("webhook endpoint %s of issuer %s created by %s", endpoint.endpointId, issuerId, caller.requested_by)
    response.headers["location"] = endpoint.links.self
    return WebhookEndpointWithSecret(endpoint=endpoint, secret=created.secret)


@router.get(
    "/webhook-endpoints",
    summary="The issuer's webhook endpoints",
    description="Status, backlog and failures of each; never a secret.",
    response_model=WebhookEndpointList,
    response_model_exclude_none=True,
    responses=responses(400, *AUTH, 429, 503),
)
async def list_endpoints(
    issuerId: str, ctx: Ctx, _: Annotated[Caller, Depends(requires(WEBHOOKS))]
) -> WebhookEndpointList:
    async with ctx.gate.slot():
        views = await endpoints_of(ctx).list(issuerId)
    return WebhookEndpointList(endpoints=[WebhookEndpoint.of(issuerId, v) for v in views])


@router.get(
    "/webhook-endpoints/{endpointId}",
    summary="One webhook endpoint",
    response_model=WebhookEndpoint,
    response_model_exclude_none=True,
    responses=responses(400, *AUTH, 404, 429, 503),
)
async def get_endpoint(
    issuerId: str, endpointId: EndpointId, ctx: Ctx, _: Annotated[Caller, Depends(requires(WEBHOOKS))]
) -> WebhookEndpoint:
    async with ctx.gate.slot():
        with _answers():
            view = await endpoints_of(ctx).get(issuerId, endpointId)
    return WebhookEndpoint.of(issuerId, view)


@router.patch(
    "/webhook-endpoints/{endpointId}",
    summary="Change an endpoint's URL, event types or description",
    response_model=WebhookEndpoint,
    response_model_exclude_none=True,
    responses=responses(400, *AUTH, 404, 413, 429, 503),
    openapi_extra=_body_ref("EndpointPatch"),
)
async def update_endpoint(
    request: Request,
    issuerId: str,
    endpointId: EndpointId,
    ctx: Ctx,
    caller: Annotated[Caller, Depends(requires(WEBHOOKS))],
) -> WebhookEndpoint:
    body: EndpointPatch = await body_of(request, ctx, EndpointPatch)
    async with ctx.gate.slot():
        with _answers():
            view = await endpoints_of(ctx).update(
                issuerId, endpointId, event_types=body.eventTypes, url=body.url, description=body.description
            )
    log.info("webhook endpoint %s of issuer %s changed by %s", endpointId, issuerId, caller.requested_by)
    return WebhookEndpoint.of(issuerId, view)


@router.post(
    "/webhook-endpoints/{endpointId}/rotate-secret",
    summary="Rotate an endpoint's signing secret",
    description="The answer holds the new secret, shown this once. The old one keeps signing for the grace "
    "period (`EVENTS_SECRET_GRACE`, 24 h): each delivery carries both signatures meanwhile.",
    response_model=WebhookEndpointWithSecret,
    responses=responses(400, *AUTH, 404, 429, 503),
)
async def rotate_secret(
    issuerId: str, endpointId: EndpointId, ctx: Ctx, caller: Annotated[Caller, Depends(requires(WEBHOOKS))]
) -> WebhookEndpointWithSecret:
    async with ctx.gate.slot():
        with _answers():
            rotated = await endpoints_of(ctx).rotate_secret(issuerId, endpointId)
    log.info("webhook endpoint %s of issuer %s: secret rotated by %s", endpointId, issuerId, caller.requested_by)
    return WebhookEndpointWithSecret(endpoint=WebhookEndpoint.of(issuerId, rotated.endpoint), secret=rotated.secret)


def _status_route(action: str, summary: str, description: str) -> None:
    async def route(
        issuerId: str, endpointId: EndpointId, ctx: Ctx, caller: Annotated[Caller, Depends(requires(WEBHOOKS))]
    ) -> WebhookEndpoint:
        async with ctx.gate.slot():
            with _answers():
                # WebhookEndpoints.disable / enable (events/api.py)
                view: c.EndpointView = await getattr(endpoints_of(ctx), action)(issuerId, endpointId)
        log.info("webhook endpoint %s of issuer %s: %sd by %s", endpointId, issuerId, action, caller.requested_by)
        return WebhookEndpoint.of(issuerId, view)

    router.add_api_route(
        f"/webhook-endpoints/{{endpointId}}/{action}",
        route,
        methods=["POST"],
        summary=summary,
        description=description,
        response_model=WebhookEndpoint,
        response_model_exclude_none=True,
        responses=responses(400, *AUTH, 404, 429, 503),
        name=f"{action}_endpoint",
    )


_status_route("disable", "Stop deliveries to an endpoint", "Its backlog is kept: enabling it delivers it, in order.")
_status_route("enable", "Resume deliveries to an endpoint", "The backlog kept while it was disabled follows, in order.")


# ---- the feed ------------------------------------------------------------------------------------


@router.get(
    "/events",
    summary="The issuer's events, for catch-up",
    description="The events the webhooks carry, in the same order (the issuer's `sequence`). Start without "
    "`after`, then pass each answer's `nextCursor` until `hasMore` is false.",
    response_model=EventPage,
    response_model_exclude_none=True,
    responses=responses(400, *AUTH, 429, 503),
)
async def read_events(
    issuerId: str,
    ctx: Ctx,
    _: Annotated[Caller, Depends(requires(READ))],
    after: Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]*$", description="A `nextCursor`")] = None,
    types: Annotated[
        list[str] | None, Query(max_length=len(ALL_TYPES), description="Only these event types (repeat the parameter)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> EventPage:
    unknown = sorted(set(types or ()) - set(ALL_TYPES))
    if unknown:
        raise invalid(InvalidOrder([FieldError("query:types", f"unknown event types: {', '.join(unknown)}")]))
    try:
        parse_cursor(after)
    except ValueError as err:
        raise invalid(InvalidOrder([FieldError("query:after", str(err))])) from None
    async with ctx.gate.slot():
        page = await ctx.feed.read(issuerId, after, types, limit)
    return EventPage(events=page.events, nextCursor=page.next_cursor, hasMore=page.has_more)


@router.post(
    "/events/{eventId}/redeliver",
    summary="Send one event again",
    description="One attempt to each enabled endpoint subscribed to its type (or to `endpointId`); the answer "
    "says where it was delivered and where not.",
    response_model=Redelivered,
    responses=responses(400, *AUTH, 404, 413, 429, 503),
    openapi_extra=_body_ref("RedeliveryRequest", required=False),
)
async def redeliver(
    request: Request, issuerId: str, eventId: EventId, ctx: Ctx, caller: Annotated[Caller, Depends(requires(WEBHOOKS))]
) -> Redelivered:
    body: RedeliveryRequest = await body_of(request, ctx, RedeliveryRequest, optional=True)
    async with ctx.gate.slot():
        try:
            result = await ctx.feed.redeliver(issuerId, eventId, body.endpointId)
        except EventNotFound:
            raise _not_found("no such event (or endpoint) for this issuer") from None
    log.info("event %s of issuer %s redelivered by %s", eventId, issuerId, caller.requested_by)
    return Redelivered(deliveredTo=result.delivered_to, failed=result.failed)


# ---- what an order sent ------------------------------------------------------------------------


class SentEvent(BaseModel):
    id: str
    type: str
    occurredAt: str


class OrderEvents(BaseModel):
    events: list[SentEvent] = Field(
        description="In the order they were emitted; each is in the feed and went to every subscribed endpoint"
    )


@router.get(
    "/card-orders/{issuerRequestId}/events",
    summary="The events an order sent",
    description="The events the order handed to the issuer's event hub, which delivers them to every "
    "subscribed endpoint; read their bodies in the feed, send one again with its redeliver call.",
    response_model=OrderEvents,
    responses=responses(400, *AUTH, 404, 429, 503),
)
async def order_events(
    issuerId: str, issuerRequestId: RequestId, ctx: Ctx, _: Annotated[Caller, Depends(requires(READ))]
) -> OrderEvents:
    handle = ctx.orders.client.get_workflow_handle(order_api.workflow_id(issuerId, issuerRequestId))
    async with ctx.gate.slot():
        try:
            sent = await handle.query(c.EVENTS_SENT_QUERY, result_type=list[c.SentEvent])
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise _not_found("no such order for this issuer") from None
            raise
    return OrderEvents(events=[SentEvent(id=e.id, type=e.type, occurredAt=e.occurred_at) for e in sent])


BODIES: tuple[type[BaseModel], ...] = (EndpointRequest, EndpointPatch, RedeliveryRequest)
__all__ = ["BODIES", "router"]
