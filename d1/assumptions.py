"""Everything about the D1 interface that D1's public documentation does not settle, in one place.

These are exactly the facts an issuer learns from Thales at onboarding, so they are
configuration, not code: a deployment overrides them in its program file
(``config/program.json``, member ``"interface"``, read by :mod:`d1.program`). Both parties
read the same model: the product from ``D1_PROGRAM_FILE``, the emulator from its own copy
(``EMULATOR_PROGRAM_FILE``), so the emulator stays an independent party that merely agrees
on the onboarding facts. The defaults below are our guesses.

Legend used in every description: **D** = documented by D1 (guide pages or the readable
part of its OpenAPI files), **G** = our reading / guess.

Choices that are not a setting (fixed shapes), kept here so there is one list:

* **Order cards (batch) response** (G; D1's response schema is unreadable): ``202`` with
  ``{"cards": [entry, ...]}``, one entry per request item in request order; an accepted item
  is ``{"cardId", "issuerRequestId"?, "operationId"}``, a refused one ``{"cardId"?,
  "issuerRequestId"?, "errorCode", "error"}`` with ``error`` the JSON path of the field in
  error in the whole body (``$.cards[3].encryptedData.pan``). A malformed envelope (not an
  object, no ``cards``, another member, an item that is not an object, 0 or more than
  :attr:`D1Interface.batchMaxCards` items) is a ``400`` for the whole request. ``cardId`` /
  ``issuerRequestId`` are echoed only when well-formed.
* **Batch items** (D for the required list ``cardId, distributionChannel, services,
  encryptedData, paymentApplication``; G for the rest): each item is validated like a
  single order of its channel (THALES ships, INSTANT names a ``persoStation``), with the
  item's own required list (no ``consumerId`` / ``cardProductId`` needed).
* **Track Card body** (D: ``oneOf`` on ``trackingType`` PRODUCTION / SHIPMENT / RETURN; G:
  every other member, see :mod:`d1.tracking`).
* **Where notifications carry ``issuerRequestId`` and ``inputFileName``** (D: documented both
  at the operation level and in ``details``; G: the emulator writes the operation level and
  readers read both).
* **Error bodies** (D: ``{"errorCode", "error"}``, ``error`` = the field in error, first
  found): ``error`` is a JSON path into the body (``$.services.issuance``), a path parameter
  by its name (``cardId``); the codes D1 does not name are in ``emulator/error_codes.py``.
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
