"""Table-driven: each documented input's rule, valid and invalid, on both readers of the contract.

* starter: ``check_order`` lists the problem at ``$.<path>`` (and nothing else), in words,
  never echoing the value; a valid value passes;
* emulator: 400 with the expected ``errorCode``, ``error`` = the D1 JSON path of the field
  (card data inside ``encryptedData``) and a ``reason``; a valid value gets 202. Where D1's
  reading differs from the product's (``Case.d1_code``), the emulator follows D1's.
"""

from __future__ import annotations

import json

import pytest

from tests.contract.conftest import D1, unique
from tests.contract.fields import CASES, Case, build, d1_path, starter_path
from tests.support.orders import TEST_PAN
from tests.support.validation import check_order

SENSITIVE = (TEST_PAN, "2906", "JANE SAMPLE", "4111111111111112")


def _no_card_data(text: str) -> None:
    for value in SENSITIVE:
        assert value not in text, "card data echoed"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_starter_reports_the_field(case: Case) -> None:
    order = build(case, unique("req"), unique("card"))
    check = check_order(order)
    if case.valid:
        assert check.ok, [str(e) for e in check.errors]
        return
    assert not check.ok
    expected = starter_path(case.expected_path)
    paths = [e.path for e in check.errors]
    assert expected in paths, paths
    assert set(paths) == {expected}, f"the case should break one field only: {paths}"
    _no_card_data(json.dumps([e.reason for e in check.errors]))


EMULATOR_CASES = [c for c in CASES if c.emulator]


@pytest.mark.parametrize("case", EMULATOR_CASES, ids=[c.id for c in EMULATOR_CASES])
async def test_emulator_answers_like_d1(d1: D1, case: Case) -> None:
    card_id, body = d1.d1_request(build(case, unique("req"), unique("card")))
    response = await d1.order(card_id, body)
    accepted = d1.state.stats.cards[card_id].accepted
    if case.emulator_code is None:
        assert response.status_code == 202, response.text
        assert accepted == 1
        return
    assert response.status_code == 400, response.text
    error = response.json()
    assert set(error) == {"errorCode", "error", "reason"}
    assert error["errorCode"] == case.emulator_code, error
    assert error["error"] == d1_path(case.expected_path), error
    assert len(error["reason"]) > 5  # a reason, not just the path
    _no_card_data(response.text)
    assert accepted == 0


def test_every_field_has_a_valid_and_an_invalid_case() -> None:
    by_field: dict[tuple[str | int, ...], set[bool]] = {}
    for case in CASES:
        by_field.setdefault(case.path, set()).add(case.valid)
    one_sided = {path for path, kinds in by_field.items() if kinds != {True, False}}
    # Whole objects and path ids: their valid side is the (valid) sample order every row starts from.
    implicit_valid = {
        ("cardId",),
        ("shipment",),
        ("persoStation",),
        ("issuerRequestId",),
        ("services",),
        ("cardData",),
        ("cardData", "cvc"),
        ("paymentApplication",),
        ("trackData", "track4"),
        ("shipment", "deliveryAddress"),
        ("shipment", "individualAddress", "line1"),
        ("shipment", "individualAddress", "countryCode"),
    }
    # Optional objects whose invalid side is their members' rows.
    implicit_invalid = {("shipment", "individualAddress")}
    assert one_sided == implicit_valid | implicit_invalid, one_sided ^ (implicit_valid | implicit_invalid)
