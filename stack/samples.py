"""Sample orders for the local stack, the benchmark and the tests (fake card data: a Luhn-valid
test PAN). Not for production: the PAN is the well-known Visa test number."""

from __future__ import annotations

import copy
from typing import Any

TEST_PAN = "4111111111111111"

BASE_ORDER: dict[str, Any] = {
    "issuerId": "TESTISS001",
    "cardId": "card-0000000001",
    "issuerRequestId": "req-0001",
    "consumerId": "cust-000123",
    "cardProductId": "DEMO_VISA_DEBIT_01",
    "distributionChannel": "THALES",
    "services": {"issuance": "CREATION", "delivery": "usps-imb", "cardCarrier": "carrier-welcome-en"},
    "cardData": {"pan": TEST_PAN, "exp": "2906", "name": "JANE SAMPLE", "cvv2": "123"},
    "paymentApplication": {"config": "DEMO_VIS163", "odaKeyIndex": "01", "derivationKeyIndex": "01"},
    "shipment": {
        "type": "INDIVIDUAL",
        "deliveryAddress": {
            "firstName": "Jane",
            "lastName": "Sample",
            "line1": "10 Main St",
            "city": "New York",
            "zipCode": "10001",
            "countryCode": "US",
        },
    },
}


def sample_order(request_id: str, card_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    order = copy.deepcopy(BASE_ORDER)
    order["issuerRequestId"] = request_id
    order["cardId"] = card_id or f"card-{request_id}"[:48]
    order.update(overrides)
    return order
