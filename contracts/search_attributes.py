"""Custom search attributes: how operators find orders in the Temporal UI and CLI.

Search attributes are stored unencrypted (the payload codec does not touch them), so
only identifiers and statuses go here: never names, addresses or card data.
"""

from __future__ import annotations

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
    ACTIVATED_AT,
    ACTIVATION,
    REPLACES_CARD_ID,
)


def dev_server_args() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    args: list[str] = []
    for key in ALL:
        kind = key.indexed_value_type.name.title().replace("_", "")  # KEYWORD_LIST -> KeywordList
        args += ["--search-attribute", f"{key.name}={kind}"]
    return args
