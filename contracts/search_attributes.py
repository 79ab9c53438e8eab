"""Custom search attributes: how operators find orders in the Temporal UI and CLI.

Search attributes are stored unencrypted (the payload codec does not touch them), so
only identifiers and statuses go here: never names, addresses or card data.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.common import SearchAttributeKey

ISSUER_ID = SearchAttributeKey.for_keyword("IssuerId")
CARD_ID = SearchAttributeKey.for_keyword("CardId")
ISSUER_REQUEST_ID = SearchAttributeKey.for_keyword("IssuerRequestId")
CONSUMER_ID = SearchAttributeKey.for_keyword("ConsumerId")
PRODUCTION_STATUS = SearchAttributeKey.for_keyword("ProductionStatus")
SHIPMENT_STATUS = SearchAttributeKey.for_keyword("ShipmentStatus")
TRACKING_NUMBER = SearchAttributeKey.for_keyword("TrackingNumber")
ORDER_OUTCOME = SearchAttributeKey.for_keyword("OrderOutcome")
DUE_DATE = SearchAttributeKey.for_datetime("DueDate")
GROUP_ID = SearchAttributeKey.for_keyword("ShipmentGroupId")
# Service levels (workflows/service_levels.py). No Keyword here: a SQL visibility store (the
# dev server, PostgreSQL) holds at most 10 custom Keyword attributes, and the labels of
# the service ("program=...", "issuance=...", "priority=...", "site=...") share one list.
SERVICE_LABELS = SearchAttributeKey.for_keyword_list("ServiceLabels")
SHIPPED_AT = SearchAttributeKey.for_datetime("ShippedAt")
SHIPPED_LATE = SearchAttributeKey.for_bool("ShippedLate")
LATE_HOURS = SearchAttributeKey.for_float("LateHours")
# The card's life around the order (contracts/activation.py, starter/replacement.py). Keyword
# lists, queried like keywords (`Activation = "..."`): Temporal's SQLite visibility (the dev
# server) holds at most 10 Keyword attributes, 9 of them taken above.
ACTIVATED_AT = SearchAttributeKey.for_datetime("ActivatedAt")
ACTIVATION = SearchAttributeKey.for_keyword_list("Activation")  # one contracts.activation.ActivationFlag
REPLACES_CARD_ID = SearchAttributeKey.for_keyword_list("ReplacesCardId")  # the card a replacement replaces

ALL: tuple[SearchAttributeKey, ...] = (
    ISSUER_ID,
    CARD_ID,
    ISSUER_REQUEST_ID,
    CONSUMER_ID,
    PRODUCTION_STATUS,
    SHIPMENT_STATUS,
    TRACKING_NUMBER,
    ORDER_OUTCOME,
    DUE_DATE,
    GROUP_ID,
    SERVICE_LABELS,
    SHIPPED_AT,
    SHIPPED_LATE,
    LATE_HOURS,
    ACTIVATED_AT,
    ACTIVATION,
    REPLACES_CARD_ID,
)


UNKNOWN_LABEL = "unknown"


def service_labels(
    program: str | None, issuance: str | None, priority: str | None, site: str | None = None
) -> list[str]:
    """The ``ServiceLabels`` values: ``name=value`` per label (filter with
    ``ServiceLabels = "priority=URGENT"``); the production site once D1 named it."""
    values = [
        f"{name}={value or UNKNOWN_LABEL}"
        for name, value in (("program", program), ("issuance", issuance), ("priority", priority))
    ]
    return values + ([f"site={site}"] if site else [])


def label_values(values: Sequence[str] | None) -> dict[str, str]:
    """``ServiceLabels`` back as a mapping (``{"program": ..., "site": ...}``)."""
    return dict(value.split("=", 1) for value in values or () if "=" in value)


def dev_server_args() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    args: list[str] = []
    for key in ALL:
        kind = key.indexed_value_type.name.title().replace("_", "")  # KEYWORD_LIST -> KeywordList
        args += ["--search-attribute", f"{key.name}={kind}"]
    return args
