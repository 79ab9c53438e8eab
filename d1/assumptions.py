"""Everything about the D1 interface that D1's public documentation does not settle, in one place.

These are facts an issuer learns from Thales at onboarding, so they are configuration, not
code: a deployment overrides them in its program file (member ``"interface"``, read by
:mod:`d1.program`); the defaults below are our guesses. Legend used in every description:
**D** = documented by D1, **G** = our reading / guess. The fixed shapes that are not a
setting (batch answer and items, Track Card body, error bodies) are listed, marked D or G,
in docs/d1/assumptions.md.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

TrackDataPlacement = Literal["encrypted", "clear"]

# D1's batch schema: 1 to 1,000 items (D).
DOCUMENTED_BATCH_MAX_CARDS = 1000

_PLACEHOLDER = re.compile(r"\{([^}]*)\}")
# Path templates: absolute, URL-path characters only, the two documented placeholders.
_TEMPLATE = re.compile(r"^/[A-Za-z0-9_.:/{}-]+$")


def _template(value: str, *, card: bool) -> str:
    if not _TEMPLATE.match(value) or "//" in value:
        raise ValueError("must be an absolute URL path template such as /issuers/{issuerId}/...")
    names = _PLACEHOLDER.findall(value)
    expected = ["issuerId", "cardId"] if card else ["issuerId"]
    if sorted(names) != sorted(expected):
        raise ValueError(f"must contain exactly the placeholders {', '.join('{' + n + '}' for n in expected)}")
    return value


class D1Interface(BaseModel):
    """The onboarding facts about D1's interface that the public documentation leaves open."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pullAndChangePath: str = Field(
        default="/issuers/{issuerId}/physicalCards/{cardId}/operations:pullAndChange",
        description="Pull & change (cancel, accelerate, redirect), POST. D: the inputs type and "
        "newDeliveryAddress and the UPDATE_ORDER outcome. G: the path and the body shape.",
    )
    batchOrderPath: str = Field(
        default="/issuers/{issuerId}/physicalCards/operations:order",
        description="D1's 'Order cards' (batch) API, POST. D: body {cards: [...]}, 1-1000 items. "
        "G: the path, the method and the response (see the module docstring).",
    )
    batchMaxCards: int = Field(
        default=DOCUMENTED_BATCH_MAX_CARDS,
        ge=1,
        le=DOCUMENTED_BATCH_MAX_CARDS,
        description="Most cards in one batch call. D: 1000; a program may agree on fewer.",
    )
    trackCardPath: str = Field(
        default="/issuers/{issuerId}/physicalCards/{cardId}/operations:track",
        description="The tracking hub's Track Card, POST. D: issuerId and cardId path parameters, "
        "body oneOf on trackingType, STANDALONE_TRACKING notifications. G: the path.",
    )
    trackDataPlacement: TrackDataPlacement = Field(
        default="encrypted",
        description="Where trackData travels. D: trackData exists (track1-3). G: 'encrypted' puts it "
        "inside the encryptedData JWE (it contains the PAN); 'clear' as a top-level body member.",
    )
    batchInputFileName: str | None = Field(
        default="order-cards-{batchId}",
        max_length=128,
        description="inputFileName carried by the notifications of cards ordered in a batch "
        "({batchId} = the batch call's x-correlation-id, else an id D1 assigns); null: none. "
        "D: notifications may carry inputFileName (the file of a file/batch channel). G: the name.",
    )
    oldCardIdInOrder: bool = Field(
        default=False,
        description="Whether a REPLACEMENT / RENEWAL order names the card it replaces in D1's oldCardId. "
        "D: services.issuance REPLACEMENT / RENEWAL. G: oldCardId is deprecated and found on no readable "
        "page, so by default the link is kept on the issuer side only (search attribute ReplacesCardId).",
    )
    productionStatusAnswersTracking: bool = Field(
        default=True,
        description="Whether productionStatus answers for a card known only from the tracking hub "
        "(then with its latest STANDALONE_TRACKING operation; a PRODUCE order always wins). "
        "D: nothing. G: yes.",
    )

    @field_validator("pullAndChangePath", "trackCardPath", "batchOrderPath")
    @classmethod
    def _path_template(cls, value: str, info: ValidationInfo) -> str:
        return _template(value, card=info.field_name != "batchOrderPath")

    @field_validator("batchInputFileName")
    @classmethod
    def _file_name(cls, value: str | None) -> str | None:
        if value is not None and set(_PLACEHOLDER.findall(value)) - {"batchId"}:
            raise ValueError("may only contain the placeholder {batchId}")
        return value


# D1's outbound Card Activation call toward the issuer's card management system (D: the path,
# POST, answered 204, idempotent; receiver/activation.py serves it). Nothing else is
# documented, so the answers below are ours (G), in D1's error-body convention
# ({"errorCode", "error"}), and D1 is assumed to retry a 5xx as it retries notifications.
ACTIVATION_PATH = "/cms/api/v1/issuers/{issuerId}/physicalCards/{cardId}/activate"
# Largest request body read: D1 documents no members; a body, when sent, is small.
ACTIVATION_MAX_BODY_BYTES = 16_384
# reason -> (HTTP status, errorCode); every one of them is G.
ACTIVATION_ERRORS: dict[str, tuple[int, str]] = {
    "bad_request": (400, "FIELD_INVALID_FORMAT"),
    "card_unknown": (404, "CARD_NOT_FOUND"),  # the bank's CMS does not know the card
    "refused": (403, "ACTIVATION_REFUSED"),  # the bank's CMS refused the activation
    "not_delivered": (403, "CARD_NOT_DELIVERED"),  # the program refuses activations before delivery
    "unavailable": (503, "SERVICE_UNAVAILABLE"),  # the bank's CMS or the order store is unreachable: retry
}
