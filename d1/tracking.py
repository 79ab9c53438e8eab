"""The tracking hub's "Track Card": ask D1 to track a card that Thales did not personalize.

D: the path parameters, the body ``oneOf`` on ``trackingType`` (``PRODUCTION`` |
``SHIPMENT`` | ``RETURN``), the error codes and the ``STANDALONE_TRACKING`` results. G: the
path (:attr:`d1.assumptions.D1Interface.trackCardPath`) and every member besides
``trackingType``; unknown members are tolerated. Both are in docs/d1/tracking.md §8.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from d1.issues import describe_pattern, not_allowed
from d1.order import _D1Model
from d1.patterns import ONBOARDING_ID_PATTERN, TEXT_PATTERN

TrackingType = Literal["PRODUCTION", "SHIPMENT", "RETURN"]

# D1's supported carrier codes (shipment-tracking guide, D; with their names in docs/d1/tracking.md).
SUPPORTED_CARRIERS = frozenset(
    """chronopost-france dhl dhl-global-mail deutsch-post estafeta fedex la-poste-colissimo nacex
    spanish-seur singapore-post spain-correos-es ups usps-iv-api""".split()
)

# G: carriers' references are letters and digits, sometimes with hyphens.
TRACKING_NUMBER_PATTERN = describe_pattern(
    r"^[A-Za-z0-9-]{1,64}$", "must be a carrier tracking number of 1-64 letters, digits or hyphens"
)


class TrackedShipment(_D1Model):
    """The parcel to follow (G: D1 needs the carrier and its reference to track a shipment)."""

    carrier: str = Field(pattern=ONBOARDING_ID_PATTERN)
    trackingNumber: str = Field(pattern=TRACKING_NUMBER_PATTERN)

    @field_validator("carrier")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in SUPPORTED_CARRIERS:
            raise not_allowed("is not a carrier code D1 supports (e.g. dhl, fedex, ups, usps-iv-api)")
        return value


class ProductionTracking(_D1Model):
    trackingType: Literal["PRODUCTION"]
    productionSite: str | None = Field(default=None, pattern=ONBOARDING_ID_PATTERN)


class ShipmentTracking(_D1Model):
    trackingType: Literal["SHIPMENT"]
    shipment: TrackedShipment
    productionSite: str | None = Field(default=None, pattern=ONBOARDING_ID_PATTERN)


class ReturnTracking(_D1Model):
    trackingType: Literal["RETURN"]
    shipment: TrackedShipment | None = None
    productionSite: str | None = Field(default=None, pattern=ONBOARDING_ID_PATTERN)
    reason: str | None = Field(default=None, min_length=1, max_length=200, pattern=TEXT_PATTERN)


class TrackCardBase(_D1Model):
    """What every Track Card body has; validating with it reports a missing or unknown type."""

    trackingType: TrackingType


_MODELS: dict[str, type[_D1Model]] = {
    "PRODUCTION": ProductionTracking,
    "SHIPMENT": ShipmentTracking,
    "RETURN": ReturnTracking,
}


def track_card_model(raw: Mapping[str, Any]) -> type[_D1Model]:
    """The class for this body; without a valid ``trackingType`` the base class reports it."""
    kind = raw.get("trackingType")
    return _MODELS[kind] if isinstance(kind, str) and kind in _MODELS else TrackCardBase
