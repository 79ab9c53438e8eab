"""No card data in identifiers or free text the edge takes (issue 19): one pure check
(d1/card_data_guard.py ``identifier_issues``), used by the order's validation, the tracking
request, pull & change (ids and note), reconciliation and the CLI's arguments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto import jwk
from temporalio.client import Client

from contracts.card_order import OrderTiming
from d1.card_data import luhn_valid
from d1.card_data_guard import identifier_issues
from d1.program import DEFAULT_PROGRAM_FILE
from d1.validation import InvalidOrder
from starter import cli
from starter.api import CardOrders
from starter.edge import OrderEdge, refuse_card_data_in
from starter.operations import redrive_one
from tests.security.support import LEAK_PAN, find_leaks
from tests.support.orders import sample_order

ISSUER = "TESTISS001"
SPACED_PAN = " ".join(LEAK_PAN[i : i + 4] for i in range(0, 16, 4))
DASHED_PAN = "-".join(LEAK_PAN[i : i + 4] for i in range(0, 16, 4))


def _luhn_complete(body: str) -> str:
    """``body`` and the one check digit that makes it Luhn-valid."""
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


pans = st.integers(min_value=13, max_value=19).flatmap(
    lambda n: st.text("0123456789", min_size=n - 1, max_size=n - 1).map(_luhn_complete)
)
# How card numbers are written (d1/card_data.py): group lengths per number of digits.
_LAYOUTS = {14: (4, 6, 4), 15: (4, 6, 5), 16: (4, 4, 4, 4), 17: (4, 4, 4, 4, 1), 18: (4, 4, 4, 4, 2)}


def _written(pan: str, separator: str) -> str:
    layout = _LAYOUTS.get(len(pan))
    if not separator or layout is None:
        return pan
    parts, at = [], 0
    for size in layout:
        parts.append(pan[at : at + size])
        at += size
    return separator.join(parts)


@settings(max_examples=300, deadline=None)
@given(
    pan=pans,
    separator=st.sampled_from(["", " ", "-"]),
    field=st.sampled_from(["cardId", "issuerRequestId", "consumerId", "groupId", "orderId", "note", "reason"]),
    prefix=st.sampled_from(["", "card-", "req_", "customer "]),
    suffix=st.sampled_from(["", "-a", "_x", " thanks"]),
)
def test_a_card_number_in_any_identifier_is_refused_by_path_without_its_value(
    pan: str, separator: str, field: str, prefix: str, suffix: str
) -> None:
    written = _written(pan, separator)
    issues = identifier_issues({field: prefix + written + suffix, "issuerId": ISSUER})
    assert [i.dotted("$") for i in issues] == [f"$.{field}"]
    text = repr(issues) + issues[0].reason
    assert pan not in text and written not in text and pan[-4:] not in text


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.text("abcdefghijklmnopqrstuvwxyzABC_-.:", min_size=1, max_size=8), st.from_regex(r"[0-9]{1,12}")),
        min_size=1,
        max_size=6,
    ).map("".join)
)
def test_ids_without_a_card_number_pass(value: str) -> None:
    # At most 12 digits in a row (with letters between runs): never a card number.
    if any(len(run) >= 13 for run in "".join(c if c.isdigit() else " " for c in value).split()):
        return
    assert identifier_issues({"cardId": value, "issuerRequestId": value, "note": value}) == []


@pytest.mark.parametrize(
    "value",
    [
        "req-0001-20261207-034640",
        "order-1764578213-001",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "card-4929731640582293",  # 16 digits, not Luhn-valid
        "4111111111",  # too short
    ],
)
def test_ids_of_the_usual_formats_pass(value: str) -> None:
    assert identifier_issues({"cardId": value, "note": value}) == []


def test_absent_values_and_nested_members_are_read() -> None:
    assert identifier_issues({"note": None}) == []
    issues = identifier_issues({"shipment": {"groupId": f"g-{LEAK_PAN}"}}, path=("order",))
    assert [i.dotted("$") for i in issues] == ["$.order.shipment.groupId"]


# ---------------------------------------------------------------- at the edge


@pytest.fixture
def edge(tmp_path: Path) -> OrderEdge:
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid="d1-enc-test")
    return OrderEdge(program_file=DEFAULT_PROGRAM_FILE, encryption_key=jwk.JWK.from_json(key.export_public()))


def _pan_order(member: str, value: str) -> dict[str, Any]:
    order = sample_order("req-pan-0001")
    if member == "groupId":
        order["shipment"] = {**order.get("shipment", {}), "groupId": value}
    else:
        order[member] = value
    return order


@pytest.mark.parametrize("member", ["cardId", "issuerRequestId", "consumerId"])
@pytest.mark.parametrize("pan", [LEAK_PAN, DASHED_PAN])
def test_an_order_with_a_card_number_as_an_id_is_refused_before_encryption(
    edge: OrderEdge, member: str, pan: str
) -> None:
    order = _pan_order(member, pan)
    with pytest.raises(InvalidOrder) as info:
        edge.prepare(order, timing=OrderTiming())
    assert f"$.{member}" in [e.path for e in info.value.errors]
    assert find_leaks("error", [str(info.value), repr(info.value), repr(info.value.errors)]) == []
    _, errors, _ = edge.check(order)
    assert f"$.{member}" in [e.path for e in errors]


def test_a_card_number_in_the_address_or_the_group_is_refused_at_validation(edge: OrderEdge) -> None:
    _, errors, _ = edge.check(_pan_order("groupId", f"grp-{LEAK_PAN}"))
    assert "$.shipment.groupId" in [e.path for e in errors]


def test_tracking_refuses_a_card_number_as_card_id(edge: OrderEdge) -> None:
    with pytest.raises(InvalidOrder) as info:
        edge.prepare_tracking(ISSUER, LEAK_PAN, "PRODUCTION", timing=OrderTiming())
    assert [e.path for e in info.value.errors] == ["$.cardId"] and LEAK_PAN not in str(info.value)


async def test_pull_and_change_refuses_a_card_number_in_the_note_or_the_ids(edge: OrderEdge) -> None:
    # No client: the refusal comes before Temporal is contacted.
    orders = CardOrders(cast(Client, None), task_queue="unused", timing=OrderTiming(), edge=edge)
    with pytest.raises(InvalidOrder) as info:
        await orders.cancel(ISSUER, "req-0001", note=f"customer card {SPACED_PAN}")
    assert [e.path for e in info.value.errors] == ["$.note"] and SPACED_PAN not in str(info.value)
    with pytest.raises(InvalidOrder):
        await orders.accelerate(ISSUER, LEAK_PAN)
    with pytest.raises(InvalidOrder):
        orders.handle(ISSUER, LEAK_PAN)
    with pytest.raises(InvalidOrder):
        await redrive_one(cast(Client, None), "card-order:x:y", reason=LEAK_PAN)
    with pytest.raises(InvalidOrder):
        refuse_card_data_in(consumerId=LEAK_PAN)


@pytest.mark.parametrize(
    "argv",
    [
        ["cancel", "req-0001", "--note", f"card {DASHED_PAN}"],
        ["redirect", LEAK_PAN, "--address", "unused.json"],
        ["status", LEAK_PAN],
        ["reconcile", LEAK_PAN],
        ["list", "--card", LEAK_PAN],
        ["track", LEAK_PAN, "--type", "PRODUCTION"],
    ],
)
async def test_the_cli_refuses_card_numbers_in_its_arguments(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli.run(argv) == cli.EXIT_INVALID
    out, err = capsys.readouterr()
    assert "refused" in err and find_leaks("CLI output", [out, err]) == []


@pytest.mark.parametrize("member", ["cardId", "issuerRequestId", "consumerId"])
async def test_the_cli_refuses_an_order_with_a_card_number_as_an_id(
    member: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(_pan_order(member, LEAK_PAN)))
    assert await cli.run(["submit", str(order_file)]) == cli.EXIT_INVALID
    out, err = capsys.readouterr()
    assert f"$.{member}" in err and find_leaks("CLI output", [out, err]) == []
