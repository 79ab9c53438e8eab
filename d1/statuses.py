"""Production statuses (``details.status``) and the ranks that keep an order from moving backwards.

D1 delivers notifications at least once and out of order, and may add statuses without
notice, so statuses are plain strings: the known ones have a rank, unknown ones have none
and are recorded without moving the order.
"""

from __future__ import annotations

from enum import StrEnum


class ProductionStatus(StrEnum):
    # The eight central-issuance statuses of a PRODUCE operation documented by D1's
    # card-order-tracking guide (D).
    CARD_PROD_REQUESTED = "CARD_PROD_REQUESTED"
    DATA_PREPARED = "DATA_PREPARED"
    CARD_PROD_READY = "CARD_PROD_READY"
    CARD_PROD_ONGOING = "CARD_PROD_ONGOING"
    CARD_PROD_DONE = "CARD_PROD_DONE"
    CARD_SHIPPED = "CARD_SHIPPED"
    DATA_EXCEPTION = "DATA_EXCEPTION"
    CARD_PROD_CANCELED = "CARD_PROD_CANCELED"
    # Documented for instant issuance (D); on a central PRODUCE operation, our reading of the
    # exception paths D1's status diagram draws without a value (G).
    CARD_PROD_EXCEPTION = "CARD_PROD_EXCEPTION"
    # Documented for the tracking hub (trackingType RETURN, D). On a PRODUCE operation it is
    # our reading (G): D1 documents no return status for central issuance.
    CARD_RETURNED = "CARD_RETURNED"
    # Our reading (G), not a D1 value: D1 draws on-hold states in its central-issuance
    # diagram without naming them; the product and the emulator use this name.
    CARD_PROD_ON_HOLD = "CARD_PROD_ON_HOLD"


class OperationStatus(StrEnum):
    PENDING = "PENDING"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"


class Operation(StrEnum):
    PRODUCE = "PRODUCE"
    UPDATE_ORDER = "UPDATE_ORDER"
    STANDALONE_TRACKING = "STANDALONE_TRACKING"


S = ProductionStatus

# Happy-path order of production. Terminal statuses rank above everything so that a stale
# progress update can never "reopen" a finished order.
PRODUCTION_RANK: dict[str, int] = {
    S.CARD_PROD_REQUESTED: 10,
    S.DATA_PREPARED: 20,
    S.CARD_PROD_READY: 30,
    S.CARD_PROD_ON_HOLD: 35,
    S.CARD_PROD_ONGOING: 40,
    S.CARD_PROD_DONE: 50,
    S.CARD_SHIPPED: 60,
    S.CARD_RETURNED: 90,
    S.DATA_EXCEPTION: 100,
    S.CARD_PROD_EXCEPTION: 100,
    S.CARD_PROD_CANCELED: 100,
}

# The one table of terminal production statuses: after these D1 sends nothing more about
# production and the order ends, with this outcome (the values are the product's
# ``contracts.card_order.Outcome`` names; tests/unit/test_rules.py keeps them in step).
TERMINAL_STATUS_OUTCOMES: dict[str, str] = {
    S.DATA_EXCEPTION: "DATA_EXCEPTION",
    S.CARD_PROD_EXCEPTION: "PRODUCTION_EXCEPTION",
    S.CARD_PROD_CANCELED: "CANCELED",
    S.CARD_RETURNED: "RETURNED",
}
TERMINAL_PRODUCTION_STATUSES: frozenset[str] = frozenset(TERMINAL_STATUS_OUTCOMES)

# Carrier shipment statuses (``details.shipment.status``). D1 does not document the value
# set; these are the normalised names the emulator sends (G) and the
# product ranks them to keep shipment tracking monotonic as well. Unknown values rank 0.
SHIPMENT_RANK: dict[str, int] = {
    "InfoReceived": 10,
    "InTransit": 20,
    "Exception": 25,
    "OutForDelivery": 30,
    "AttemptFail": 35,
    "Delivered": 90,
    "Returned": 90,
}


def production_rank(status: str | None) -> int | None:
    """Rank of a known production status, ``None`` for unknown ones (kept, never ranked)."""
    return PRODUCTION_RANK.get(status or "")


def shipment_rank(status: str | None) -> int:
    return SHIPMENT_RANK.get(status or "", 0)
