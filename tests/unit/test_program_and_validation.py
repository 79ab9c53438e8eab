"""The program configuration and the starter's validation behaviours around the field rules:
every problem at once, unknown members, deprecated members, expiry format per program."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from d1.order import CARD_ORDER_MODELS, parse_card_order
from d1.program import DEFAULT_PROGRAM_FILE, Program, ProgramConfigError, load_program
from emulator.error_codes import D1Error
from emulator.validation import RequestValidator
from starter import cli
from tests.support.orders import TEST_PAN, sample_order
from tests.support.validation import InvalidOrder, check_order, validate_address, validate_order

ROOT = Path(__file__).resolve().parents[2]


def program_with(**changes: Any) -> Program:
    raw = json.loads(DEFAULT_PROGRAM_FILE.read_text())
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return Program.model_validate(raw)


def test_samples_are_valid_under_the_default_program() -> None:
    sample = json.loads((ROOT / "samples" / "order.json").read_text())
    complete = json.loads((ROOT / "samples" / "order-complete.json").read_text())  # the README's example
    for order in (sample, complete, sample_order("req-1")):
        check = check_order(order)
        assert check.ok and check.errors == [] and check.warnings == [], check


def test_every_problem_at_once_by_path_without_values() -> None:
    order = sample_order("req-1")
    order["cardData"].update(pan="4111111111111112", exp="2913", cvv2="12345")
    order["services"].update(issuance="RENEW", delivery="pigeon")
    order["shipment"]["deliveryAddress"].update(countryCode="JP", mobilePhoneNumber="0612")
    del order["paymentApplication"]["odaKeyIndex"]
    with pytest.raises(InvalidOrder) as err:
        validate_order(order)
    paths = {e.path for e in err.value.errors}
    assert paths == {
        "$.cardData.pan",
        "$.cardData.exp",
        "$.cardData.cvv2",
        "$.services.issuance",
        "$.services.delivery",
        "$.shipment.deliveryAddress.countryCode",
        "$.shipment.deliveryAddress.mobilePhoneNumber",
        "$.paymentApplication.odaKeyIndex",
    }
    text = str(err.value) + repr(err.value.errors)
    assert TEST_PAN[:6] not in text and "12345" not in text and "2913" not in text


def test_unknown_members_are_errors_with_a_suggestion_or_warnings_on_request() -> None:
    order = sample_order("req-1")
    order["services"]["pinMailler"] = True
    order["newTopLevel"] = 1
    check = check_order(order)
    assert [str(e) for e in check.errors] == [
        "$.services.pinMailler: is not a field of the D1 order; did you mean 'pinMailer'?",
        "$.newTopLevel: is not a field of the D1 order",
    ]
    lenient = check_order(order, unknown_fields="warn")
    assert lenient.ok and len(lenient.warnings) == 2
    assert lenient.order is not None
    body = lenient.order.d1_body("JWE")
    assert body["newTopLevel"] == 1 and body["services"]["pinMailler"] is True  # passed through
    # ... but never inside card data, which would travel encrypted and unnoticed.
    order = sample_order("req-1")
    order["cardData"]["cvc"] = "123"
    assert not check_order(order, unknown_fields="warn").ok


def test_deprecated_members_are_accepted_passed_through_and_reported() -> None:
    order = sample_order("req-1", state="ACTIVE", oldCardId="card-old-1")
    check = check_order(order)
    assert check.ok and check.order is not None
    assert {w.path for w in check.warnings} == {"$.state", "$.oldCardId"}
    body = check.order.d1_body("JWE")
    assert body["state"] == "ACTIVE" and body["oldCardId"] == "card-old-1"
    plain = check_order(sample_order("req-2")).order
    assert plain is not None and "state" not in plain.d1_body("JWE") and plain.effective_state == "ACTIVE"


def test_bulk_without_group_is_a_warning() -> None:
    order = sample_order("req-1")
    order["shipment"]["type"] = "BULK"
    check = check_order(order)
    assert check.ok and [w.path for w in check.warnings] == ["$.shipment.groupId"]


def test_channels_are_discriminated() -> None:
    order = sample_order(
        "req-1", distributionChannel="INSTANT", persoStation="BRANCH-017-ST1", services={"issuance": "CREATION"}
    )
    del order["shipment"]
    parsed = validate_order(order)
    assert isinstance(parsed, CARD_ORDER_MODELS["INSTANT"]) and not parsed.ships
    body = parsed.d1_body("JWE")
    assert body["distributionChannel"] == "INSTANT" and "shipment" not in body
    assert type(parse_card_order(sample_order("req-2"))).__name__ == "ThalesCardOrder"


def test_expiry_format_comes_from_the_program() -> None:
    mmyy = program_with(cardData__expiryFormat="MMYY")
    order = sample_order("req-1")  # exp 2906 = June 2029 in YYMM, month 29 in MMYY
    assert check_order(order).ok
    assert [e.path for e in check_order(order, program=mmyy).errors] == ["$.cardData.exp"]
    order["cardData"]["exp"] = "0629"
    assert check_order(order, program=mmyy).ok
    assert check_order(order, expiry_format="MMYY").ok  # D1_EXPIRY_FORMAT overrides the program
    validator = RequestValidator(mmyy)
    validator.card({"pan": TEST_PAN, "exp": "0629"}, None, {})
    with pytest.raises(D1Error) as bad:
        validator.card({"pan": TEST_PAN, "exp": "2906"}, None, {})
    assert bad.value.body()["error"] == "$.encryptedData.exp"


def test_program_rules_can_be_stricter() -> None:
    strict = program_with(
        shipment__individualAddressRequired=True,
        cardData__printedName={"required": True, "pattern": "^[A-Z ]+$", "maxLength": 21, "rule": "capitals"},
        cardDesign__cardImage={"required": True, "pattern": "^img_[0-9]{10}$"},
    )
    order = sample_order("req-1")
    order["cardData"]["name"] = "Jane Sample"
    errors = {str(e) for e in check_order(order, program=strict).errors}
    assert errors == {
        "$.shipment.individualAddress: is required for INDIVIDUAL shipments in this program",
        "$.cardData.name: can only contain capitals to be printed",
        "$.cardDesign.cardImage: is required: this program prints picture cards",
    }


def test_program_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ProgramConfigError, match="program file"):
        load_program(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ProgramConfigError, match="not readable JSON"):
        load_program(bad)
    typo = tmp_path / "typo.json"
    raw = json.loads(DEFAULT_PROGRAM_FILE.read_text())
    raw["shipment"]["allowedCountry"] = ["US"]
    raw["shipment"]["allowedCountries"] = ["US", "XX"]
    typo.write_text(json.dumps(raw))
    with pytest.raises(ProgramConfigError) as err:
        load_program(typo)
    assert "allowedCountry" in str(err.value) and "XX" in str(err.value)
    assert load_program(DEFAULT_PROGRAM_FILE).programId == "DEMO-DEBIT-2026"


def test_address_validation_for_redirects() -> None:
    address = validate_address({"line1": "1 A St", "city": "Paris", "zipCode": "75001", "countryCode": "FR"})
    assert address.countryCode == "FR"
    with pytest.raises(InvalidOrder) as err:
        validate_address({"line1": "", "city": "Tokyo", "zipCode": "100", "countryCode": "JP", "zip": "x"})
    assert {e.path for e in err.value.errors} == {
        "$.newDeliveryAddress.line1",
        "$.newDeliveryAddress.countryCode",
        "$.newDeliveryAddress.zip",
    }


async def test_cli_prints_every_problem_and_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    order = sample_order("req-cli")
    order["cardData"]["pan"] = "4111111111111112"
    order["services"]["pinMailler"] = True
    order["state"] = "ACTIVE"
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order))
    assert await cli.run(["submit", str(path)]) == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert "nothing was started (2 problem(s))" in err
    assert "  - $.cardData.pan: fails the Luhn check digit" in err
    assert "  - $.services.pinMailler: is not a field of the D1 order; did you mean 'pinMailer'?" in err
    assert "  warning: $.state: is deprecated" in err
    assert TEST_PAN[:6] not in err
