"""``/v1/issuers/{issuerId}/cards/{cardId}/…``: a card's life around its order through the same
calls as the Python API and the CLI (starter/replacement.py): replace it (lost, stolen, damaged,
expired, other), renew it, or re-ship a card that came back or was lost in transit to a corrected
address. The new order reuses the card's last order unless ``changes`` says otherwise."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar, cast

from fastapi import APIRouter, Depends, Response
from fastapi import Path as PathParam
from pydantic import Field

from d1.patterns import CARD_ID_PATTERN, ISSUER_REQUEST_ID_PATTERN
from d1.validation import InvalidOrder
from issuer_api.auth import WRITE, Caller, requires
from issuer_api.context import ApiContext, context
from issuer_api.models import Links, Model
from issuer_api.orders import AUTH, order_path
from issuer_api.problems import ProblemError, invalid, responses
from starter.api import CardOrders, SubmittedOrder
from starter.errors import OrderRefused
from starter.replacement import NoPreviousOrder
from starter.same_order import ForeignStart

router = APIRouter(prefix="/v1/issuers/{issuerId}/cards/{cardId}", tags=["card life"])
Ctx = Annotated[ApiContext, Depends(context)]
CardId = Annotated[str, PathParam(pattern=CARD_ID_PATTERN, examples=["card-demo-0001"])]


class NewCard(Model):
    newCardId: str = Field(pattern=CARD_ID_PATTERN, examples=["card-demo-0002"])
    cardData: dict[str, Any] = Field(description="the new card's data (PAN, expiry, ...), encrypted here for D1")
    issuerRequestId: str | None = Field(default=None, pattern=ISSUER_REQUEST_ID_PATTERN)


class ReplacementRequest(NewCard):
    reason: Literal["LOST", "STOLEN", "DAMAGED", "EXPIRED", "OTHER"]
    changes: dict[str, Any] | None = Field(default=None, description="members of the order that differ from the last")


class RenewalRequest(NewCard):
    changes: dict[str, Any] | None = None


class ReshipmentRequest(NewCard):
    newDeliveryAddress: dict[str, Any] = Field(description="the corrected address, checked as a redirect's is")


class CardOrderStarted(Model):
    id: str
    issuerId: str
    cardId: str
    replacesCardId: str
    created: bool
    links: Links


def _started(response: Response, issuer_id: str, old: str, new: str, submitted: SubmittedOrder) -> CardOrderStarted:
    rid = submitted.workflow_id.split(":", 2)[2]
    path = order_path(issuer_id, rid)
    response.status_code = 201 if submitted.created else 200
    response.headers["location"] = path
    return CardOrderStarted(
        id=submitted.workflow_id, issuerId=issuer_id, cardId=new, replacesCardId=old, created=submitted.created,
        links=Links(self=path, timeline=f"{path}/timeline"),
    )  # fmt: skip


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Asked before: the same order", "model": CardOrderStarted},
    **responses(400, *AUTH, 404, 409, 413, 429, 503),
}
B = TypeVar("B", bound=NewCard)


def _route(
    path: str,
    name: str,
    summary: str,
    request: type[B],
    call: Callable[[CardOrders, str, str, B], Awaitable[SubmittedOrder]],
) -> None:
    """``POST {path}``: the new card's order through ``call`` (a CardOrders method, starter/replacement.py)."""

    async def route(
        issuerId: str,
        cardId: CardId,
        body: NewCard,
        response: Response,
        ctx: Ctx,
        _: Annotated[Caller, Depends(requires(WRITE))],
    ) -> CardOrderStarted:
        async with ctx.gate.slot():
            try:
                submitted = await call(ctx.orders, issuerId, cardId, cast(B, body))
            except InvalidOrder as err:
                raise invalid(err) from None
            except (OrderRefused, ForeignStart) as err:
                raise ProblemError(409, "card-order-refused", str(err)) from None
            except NoPreviousOrder as err:  # nothing to reuse: no order of this card (or its history is gone)
                raise ProblemError(404, "card-not-found", str(err)) from None
        return _started(response, issuerId, cardId, body.newCardId, submitted)

    # The body's model (and so the request schema) is the route's own.
    route.__annotations__["body"] = request
    router.add_api_route(
        path,
        route,
        methods=["POST"],
        name=name,
        summary=summary,
        status_code=201,
        response_model=CardOrderStarted,
        responses=_RESPONSES,
    )


def _replace(orders: CardOrders, issuer_id: str, card_id: str, body: ReplacementRequest) -> Awaitable[SubmittedOrder]:
    return orders.replace(
        issuer_id, card_id, body.reason, new_card_id=body.newCardId, card_data=body.cardData, changes=body.changes,
        issuer_request_id=body.issuerRequestId,
    )  # fmt: skip


def _renew(orders: CardOrders, issuer_id: str, card_id: str, body: RenewalRequest) -> Awaitable[SubmittedOrder]:
    return orders.renew(
        issuer_id, card_id, new_card_id=body.newCardId, card_data=body.cardData, changes=body.changes,
        issuer_request_id=body.issuerRequestId,
    )  # fmt: skip


def _reship(orders: CardOrders, issuer_id: str, card_id: str, body: ReshipmentRequest) -> Awaitable[SubmittedOrder]:
    return orders.reship(
        issuer_id, card_id, body.newDeliveryAddress, new_card_id=body.newCardId, card_data=body.cardData,
        issuer_request_id=body.issuerRequestId,
    )  # fmt: skip


_route(
    "/replacement",
    "replace",
    "Replace a card (lost, stolen, damaged, expired): a new card, linked to this one",
    ReplacementRequest,
    _replace,
)
_route(
    "/renewal",
    "renew",
    "Renew a card (issuance RENEWAL, D1's own service level): a new card, linked to this one",
    RenewalRequest,
    _renew,
)
_route(
    "/reshipment",
    "reship",
    "Re-ship a card that came back or was lost in transit, to a corrected address, in one call",
    ReshipmentRequest,
    _reship,
)
