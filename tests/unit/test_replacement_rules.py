"""The pure rules of the card's life after its order: how a replacement is built from the last
order (starter/replacement.py) and how a quiet shipped card ends (workflows/returns.py)."""

from __future__ import annotations

from contracts.card_order import OrderState, OrderTiming, Outcome
from d1.notifications import ShipmentInfo
from starter.replacement import NOT_REUSED, PreviousOrder, Reason, Replacement, merge, new_order
from workflows.returns import quiet_ending

LAST_BODY = {
    "cardProductId": "DEMO_VISA_DEBIT_01",
    "consumerId": "cust-1",
    "services": {"issuance": "CREATION", "delivery": "usps-imb", "cardCarrier": "carrier-welcome-en"},
    "shipment": {
        "type": "INDIVIDUAL",
        "deliveryAddress": {
            "line1": "10 Main St",
            "city": "New York",
            "zipCode": "10001",
            "countryCode": "US",
            "firstName": "Jane",
        },
    },
}


def previous() -> PreviousOrder:
    return PreviousOrder(
        "card-order:TESTISS001:r1",
        False,
        "r1",
        "DELIVERED",
        {k: v for k, v in LAST_BODY.items() if k not in NOT_REUSED},
    )


def test_changes_merge_objects_but_replace_an_address_whole_and_none_removes() -> None:
    address = {"line1": "22 Elm St", "city": "Boston", "zipCode": "02108", "countryCode": "US"}
    merged = merge(
        LAST_BODY,
        {
            "services": {"cardCarrier": "carrier-renewal-en"},
            "shipment": {"deliveryAddress": address},
            "consumerId": None,
        },
    )
    assert merged["services"] == {"issuance": "CREATION", "delivery": "usps-imb", "cardCarrier": "carrier-renewal-en"}
    assert merged["shipment"]["deliveryAddress"] == address  # no firstName left over from the old address
    assert "consumerId" not in merged
    assert LAST_BODY["services"]["cardCarrier"] == "carrier-welcome-en"  # the template is untouched


def test_the_new_order_says_its_issuance_and_its_new_card_only() -> None:
    card = {"pan": "4111111111111111", "exp": "3012"}
    renewal = Replacement(
        issuer_id="TESTISS001", card_id="old-1", reason=Reason.RENEWAL, new_card_id="new-1", card_data=card
    )
    order = new_order(previous(), renewal, old_card_id_in_order=False)
    assert order["services"]["issuance"] == "RENEWAL" and "oldCardId" not in order
    assert (order["cardId"], order["issuerRequestId"], order["cardData"]) == ("new-1", "renew-new-1", card)
    lost = Replacement(issuer_id="TESTISS001", card_id="old-1", reason=Reason.LOST, new_card_id="new-2", card_data=card)
    order = new_order(previous(), lost, old_card_id_in_order=True)
    assert (order["services"]["issuance"], order["oldCardId"], order["issuerRequestId"]) == (
        "REPLACEMENT",
        "old-1",
        "replace-new-2",
    )


def test_the_last_order_gives_no_identifiers_nor_card_data() -> None:
    assert {"issuerId", "cardId", "issuerRequestId", "encryptedData", "trackData", "oldCardId", "state"} <= set(
        NOT_REUSED
    )


def test_a_carrier_exception_then_silence_is_lost_in_transit_any_other_silence_shipped() -> None:
    timing = OrderTiming()
    lost = OrderState(shipment=ShipmentInfo(status="Exception"))
    assert quiet_ending(lost, timing)[0] is Outcome.LOST_IN_TRANSIT
    assert quiet_ending(OrderState(shipment=ShipmentInfo(status="InTransit")), timing) == (
        Outcome.SHIPPED,
        "carrier tracking quiet after shipping",
    )
    assert quiet_ending(OrderState(), timing)[0] is Outcome.SHIPPED


def test_an_activation_is_news_once_or_after_a_refusal() -> None:
    from contracts.activation import ActivationFlag, supersedes

    assert supersedes(ActivationFlag.BEFORE_DELIVERY, None)
    assert not supersedes(ActivationFlag.ACTIVATED, ["ACTIVATED_BEFORE_DELIVERY"])  # the flag stays
    assert not supersedes(ActivationFlag.ACTIVATED, ["ACTIVATED"])
    assert supersedes(ActivationFlag.ACTIVATED, ["REFUSED_BEFORE_DELIVERY"])
    assert not supersedes(ActivationFlag.REFUSED_BEFORE_DELIVERY, ["REFUSED_BEFORE_DELIVERY"])
