"""The card-data guard: nothing shaped like card data leaves for D1 outside encryptedData."""

from __future__ import annotations

from typing import Any

import pytest

from d1.card_data_guard import CardDataInClear, card_data_issues, ensure_no_card_data, holds_pan, is_card_data_name

PAN = "4929731640582292"  # Luhn-valid
NOT_LUHN = "4929731640582293"


@pytest.mark.parametrize(
    "name",
    [
        "pan",
        "PAN",
        "cvv",
        "cvv2",
        "CVV1",
        "cvc2",
        "csc",
        "cvn",
        "cid",
        "securityCode",
        "security_code",
        "cardVerificationValue",
        "cardVerificationValue2",
        "pvv",
        "pin",
        "pinBlock",
        "exp",
        "expMonth",
        "expYear",
        "expiry",
        "expiryDate",
        "expiration",
        "expirationDate",
        "track1",
        "track2",
        "track3",
        "trackData",
        "tracks",
        "cardData",
        "cardNumber",
        "primaryAccountNumber",
        "panSequenceNumber",
    ],
)
def test_card_data_names(name: str) -> None:
    assert is_card_data_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "pinMailer",
        "trackingNumber",
        "trackingType",
        "trackingUrl",
        "cardId",
        "consumerId",
        "expressCarrier",
        "cardProductId",
        "encryptedData",
        "cidr",
        "panel",
        "expected",
        "services",
        "panorama",
    ],
)
def test_ordinary_names_pass(name: str) -> None:
    assert not is_card_data_name(name)


@pytest.mark.parametrize(
    "text",
    [
        PAN,
        f"card {PAN} x",
        "4929 7316 4058 2292",
        "4929-7316-4058-2292",
        "4929.7316.4058.2292",
        "4929/7316/4058/2292",
        "3782 822463 10005",
        "ref4929731640582292",
        "6011 0009 9013 9424",
    ],
)
def test_card_numbers_are_found(text: str) -> None:
    assert holds_pan(text)


@pytest.mark.parametrize(
    "text",
    [
        NOT_LUHN,
        "leak-1796115420-037",
        "order-2026-12-01",
        "4929 7316-4058 2292",
        "1234567890123",
        "492973164058229",
        "12345678901234567890123",
        "2026-12-01T10:00:00Z",
        "10.100.200.300",
        "req-0001",
    ],
)
def test_ids_dates_and_mixed_separators_pass(text: str) -> None:
    assert not holds_pan(text)


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "distributionChannel": "THALES",
        "cardProductId": "DEMO_VISA_DEBIT_01",
        "issuerRequestId": "req-1764578213-001",
        "services": {"issuance": "CREATION", "pinMailer": True},
        "encryptedData": f"eyJhbGciOi.{PAN}.not-checked-it-is-ciphertext",
        "shipment": {"deliveryAddress": {"line1": "10 Main St", "city": "New York"}},
        **extra,
    }


def test_a_clean_body_passes_and_encrypted_data_is_not_inspected() -> None:
    assert card_data_issues(_body()) == []
    ensure_no_card_data(_body())


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (_body(cvv2="123"), "$.cvv2"),
        (_body(securityCode="123"), "$.securityCode"),
        (_body(cardData={"pan": PAN}), "$.cardData"),
        (_body(trackData={"track2": f";{PAN}=2906101?"}), "$.trackData"),
        (_body(services={"issuance": "CREATION", "expMonth": "06"}), "$.services.expMonth"),
        (
            _body(shipment={"deliveryAddress": {"line1": f"PAN {PAN}", "city": "NY"}}),
            "$.shipment.deliveryAddress.line1",
        ),
        (_body(cardDesign={"customLines": ["DEBIT", "4929 7316 4058 2292"]}), "$.cardDesign.customLines[1]"),
        (_body(note=int(PAN)), "$.note"),
        (_body(extras=[{"deep": {"deeper": {"x": PAN}}}]), "$.extras[0].deep.deeper.x"),
    ],
)
def test_card_data_outside_the_jwe_is_refused_by_path(body: dict[str, Any], path: str) -> None:
    issues = card_data_issues(body)
    assert [i.dotted("$") for i in issues] == [path]
    with pytest.raises(CardDataInClear) as info:
        ensure_no_card_data(body)
    assert path in str(info.value) and PAN not in str(info.value) and "123" not in str(info.value).split(":")[-1]


def test_a_key_holding_a_pan_is_refused_without_repeating_it() -> None:
    issues = card_data_issues(_body(lookup={PAN: "x"}))
    assert len(issues) == 1 and PAN not in issues[0].dotted("$") and PAN not in issues[0].reason


def test_tracks_in_clear_only_where_the_program_says_so() -> None:
    body = _body(trackData={"track2": f";{PAN}=2906101?"})
    assert card_data_issues(body, clear_members=frozenset({"trackData"})) == []
    assert card_data_issues(_body(cvv2="123"), clear_members=frozenset({"trackData"})) != []
