"""``/v1/issuers/{issuerId}/card-trackings``: D1's tracking hub, for cards Thales did not
personalize (contracts/card_tracking.py), through ``CardOrders.track``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam
from temporalio.service import RPCError, RPCStatusCode

from contracts import card_tracking as tracking_api
from d1.patterns import CARD_ID_PATTERN
from d1.validation import FieldError, InvalidOrder
from issuer_api.auth import READ, WRITE, Caller, requires
from issuer_api.context import ApiContext, context
from issuer_api.limits import read_json
from issuer_api.models import Links, Tracking
from issuer_api.orders import AUTH
from issuer_api.problems import ProblemError, invalid, responses

router = APIRouter(prefix="/v1/issuers/{issuerId}/card-trackings", tags=["card trackings"])
Ctx = Annotated[ApiContext, Depends(context)]
TrackingType = Annotated[str, PathParam(pattern="^(PRODUCTION|SHIPMENT|RETURN)$", examples=["SHIPMENT"])]
CardId = Annotated[str, PathParam(pattern=CARD_ID_PATTERN, examples=["card-demo-0001"])]


def _path(issuer_id: str, card_id: str, tracking_type: str) -> str:
    return f"/v1/issuers/{issuer_id}/card-trackings/{card_id}/{tracking_type}"


@router.post(
    "",
    summary="Ask D1's tracking hub to follow a card",
    description="Asking again for a tracking that runs answers 200 with it; once it ended, a new one starts (201).",
    status_code=201,
    response_model=Tracking,
    responses={
        200: {"description": "The tracking already runs", "model": Tracking},
        **responses(400, *AUTH, 413, 429, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TrackingRequest"}}},
        }
    },
)
async def create_tracking(
    request: Request, response: Response, issuerId: str, ctx: Ctx, _: Annotated[Caller, Depends(requires(WRITE))]
) -> Tracking:
    raw = await read_json(request, ctx.settings.max_body_bytes)
    if not isinstance(raw, dict):
        raise invalid(InvalidOrder([FieldError("$", "must be a JSON object")]))
    card_id, tracking_type = raw.get("cardId"), raw.get("trackingType")
    errors = []
    if not isinstance(card_id, str):
        errors.append(FieldError("$.cardId", "required: the card's id"))
    if tracking_type not in tracking_api.TRACKING_TYPES:
        errors.append(FieldError("$.trackingType", "must be PRODUCTION, SHIPMENT or RETURN"))
    if errors:
        raise invalid(InvalidOrder(errors))
    details: dict[str, Any] = {k: v for k, v in raw.items() if k not in ("cardId", "trackingType", "issuerId")}
    async with ctx.gate.slot():
        try:
            submitted = await ctx.orders.track(issuerId, str(card_id), str(tracking_type), details=details)
        except InvalidOrder as err:
            raise invalid(err) from None
    path = _path(issuerId, str(card_id), str(tracking_type))
    response.status_code = 201 if submitted.created else 200
    response.headers["location"] = path
    return Tracking(
        id=submitted.workflow_id,
        issuerId=issuerId,
        cardId=str(card_id),
        trackingType=str(tracking_type),
        created=submitted.created,
        links=Links(self=path),
    )


@router.get(
    "/{cardId}/{trackingType}",
    summary="A tracking as it stands",
    response_model=Tracking,
    responses=responses(400, *AUTH, 404, 429, 503),
)
async def get_tracking(
    issuerId: str, cardId: CardId, trackingType: TrackingType, ctx: Ctx, _: Annotated[Caller, Depends(requires(READ))]
) -> Tracking:
    async with ctx.gate.slot():
        try:
            view = await ctx.orders.tracking_status(issuerId, cardId, trackingType)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise ProblemError(404, "not-found", "no such tracking for this issuer") from None
            raise
    state = view.state
    return Tracking(
        id=view.workflow_id,
        issuerId=issuerId,
        cardId=cardId,
        trackingType=trackingType,
        status=state.production_status,
        view={
            "productionStatus": state.production_status,
            "shipmentStatus": state.shipment.status if state.shipment else None,
            "outcome": state.outcome.value if state.outcome else None,
        },
        links=Links(self=_path(issuerId, cardId, trackingType)),
    )
