"""Replace, renew and re-ship as actions (issue 23): linked orders from the Python API and the
CLI, the renewal campaign through D1's batch API, a returned card re-shipped in one action."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from contracts import search_attributes as sa
from contracts.card_order import Outcome
from starter import cli
from starter.api import OrderRefused
from starter.replacement import Reason, Replacement
from tests.conftest import ISSUER_ID, fast_timing, new_request_id
from tests.lifecycle.conftest import Life
from tests.support.orders import TEST_PAN, sample_order

pytestmark = pytest.mark.asyncio

NEW_CARD = {"pan": TEST_PAN, "exp": "3012", "name": "JANE SAMPLE"}
ADDRESS = {
    "firstName": "Jane",
    "lastName": "Sample",
    "line1": "22 Elm St",
    "city": "Boston",
    "zipCode": "02108",
    "countryCode": "US",
}


async def delivered_card(life: Life, prefix: str = "old", **overrides: object) -> tuple[str, str]:
    rid = new_request_id(prefix)
    card = f"card-{rid}"
    await life.orders.submit(sample_order(rid, card_id=card, **overrides))
    view = await life.orders.wait(ISSUER_ID, rid)
    assert view.state.outcome is not None
    return card, rid


async def test_replace_starts_a_linked_order_reusing_the_last_one(life: Life) -> None:
    old, _ = await delivered_card(life, packagingConfig={"inserts": ["welcome-letter"]})
    new = f"card-{new_request_id('new')}"
    submitted = await life.orders.replace(ISSUER_ID, old, "lost", new_card_id=new, card_data=NEW_CARD)
    assert submitted.created and submitted.workflow_id.endswith(f"replace-{new}")
    view = await life.orders.wait(ISSUER_ID, f"replace-{new}")
    assert view.state.outcome == Outcome.DELIVERED
    assert (view.ref.card_id, view.ref.replaces_card_id, view.ref.replacement_reason) == (new, old, "LOST")
    assert view.ref.card_product_id == "DEMO_VISA_DEBIT_01"

    # D1 got a REPLACEMENT with the last order's address and carrier (not the deprecated oldCardId).
    sent = await life.emulator_order(new)
    assert sent["issuance"] == "REPLACEMENT" and sent["oldCardId"] is None
    assert sent["cardCarrier"] == "carrier-welcome-en" and sent["cardProductId"] == "DEMO_VISA_DEBIT_01"
    assert sent["deliveryAddress"]["city"] == "New York"

    # The old card's side of the link, and the search attribute.
    assert [o.card_id for o in await life.orders.replacements(ISSUER_ID, old)] == [new]
    described = await life.orders.handle(ISSUER_ID, f"replace-{new}").describe()
    assert described.typed_search_attributes.get(sa.REPLACES_CARD_ID) == [old]

    # Asked again: the same order.
    again = await life.orders.replace(ISSUER_ID, old, "LOST", new_card_id=new, card_data=NEW_CARD)
    assert not again.created and again.workflow_id == submitted.workflow_id


async def test_renew_from_the_cli_with_changes_and_old_card_id_where_the_program_says(
    life: Life, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in life.cli_env().items():
        monkeypatch.setenv(key, value)
    old, _ = await delivered_card(life)
    new = f"card-{new_request_id('renewed')}"
    card_file, changes_file = tmp_path / "card.json", tmp_path / "changes.json"
    card_file.write_text(json.dumps(NEW_CARD), encoding="utf-8")
    changes_file.write_text(json.dumps({"services": {"cardCarrier": "carrier-renewal-en"}}), encoding="utf-8")
    program = json.loads(life.program_file.read_text(encoding="utf-8"))
    program["interface"]["oldCardIdInOrder"] = True
    original = life.program_file.read_text(encoding="utf-8")
    life.program_file.write_text(json.dumps(program), encoding="utf-8")
    try:
        argv = ["renew", old, "--new-card-id", new, "--card-data", str(card_file), "--changes", str(changes_file)]
        assert await cli.run(argv) == 0
    finally:
        life.program_file.write_text(original, encoding="utf-8")
    assert f"renew-{new} started" in capsys.readouterr().out
    await life.orders.wait(ISSUER_ID, f"renew-{new}")
    sent = await life.emulator_order(new)
    assert (sent["issuance"], sent["oldCardId"], sent["cardCarrier"]) == ("RENEWAL", old, "carrier-renewal-en")

    assert await cli.run(["card", new, "-o", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["replaces"] == old
    assert await cli.run(["card", old, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["replacedBy"] == [new]

    # A card the product never ordered cannot be renewed from its last order.
    unknown = ["renew", f"card-{new_request_id('unknown')}", "--new-card-id", "x1", "--card-data", str(card_file)]
    assert await cli.run(unknown) == cli.EXIT_NOT_FOUND


async def test_replacing_a_card_with_an_open_order_is_refused_or_cancels_it(life: Life) -> None:
    slow = f"slow-{new_request_id('open')}"
    rule = {"match": {"cardIdPrefix": slow}, "stepDelayMs": 1500}
    assert (await life.emulator("POST", "/_emulator/scenarios", json={"rules": [rule]})).status_code == 200
    rid = new_request_id("open")
    await life.orders.submit(sample_order(rid, card_id=slow))
    await life.orders.wait_for(ISSUER_ID, rid, lambda v: v.state.submitted)
    new = f"card-{new_request_id('instead')}"
    with pytest.raises(OrderRefused, match="has an open order"):
        await life.orders.replace(ISSUER_ID, slow, "STOLEN", new_card_id=new, card_data=NEW_CARD)

    with life.lifecycle(openOrderOnReplace="cancel"):
        submitted = await life.orders.replace(ISSUER_ID, slow, "STOLEN", new_card_id=new, card_data=NEW_CARD)
    assert submitted.created
    old = await life.orders.wait(ISSUER_ID, rid)
    assert old.state.outcome == Outcome.CANCELED
    assert old.state.changes[0].note == f"replacement by card {new}"


async def test_a_renewal_campaign_goes_out_in_d1_batches(life: Life) -> None:
    olds = await asyncio.gather(*(delivered_card(life, "campaign") for _ in range(3)))
    news = [f"card-{new_request_id('renewal')}" for _ in olds]
    renewals = [
        Replacement(issuer_id=ISSUER_ID, card_id=old, reason=Reason.RENEWAL, new_card_id=new, card_data=NEW_CARD)
        for (old, _), new in zip(olds, news, strict=True)
    ]
    # One line whose card the product never ordered is refused, the others go out.
    stranger = Replacement(
        issuer_id=ISSUER_ID,
        card_id="card-never-ordered",
        reason=Reason.RENEWAL,
        new_card_id="card-z",
        card_data=NEW_CARD,
    )
    results = await life.orders.renew_many([*renewals, stranger])
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert results[3].refused and "no order of card card-never-ordered" in results[3].refused
    batches = {r.d1_batch for r in results[:3]}
    assert len(batches) == 1 and None not in batches
    for new in news:
        view = await life.orders.wait(ISSUER_ID, f"renew-{new}")
        assert view.state.outcome == Outcome.DELIVERED and view.ref.replacement_reason == "RENEWAL"
        sent = await life.emulator_order(new)
        assert (sent["issuance"], sent["via"]) == ("RENEWAL", "batch")

    # A card ordered in a D1 batch is replaced from what its batch sent.
    damaged = f"card-{new_request_id('damaged')}"
    await life.orders.replace(ISSUER_ID, news[0], "damaged", new_card_id=damaged, card_data=NEW_CARD)
    view = await life.orders.wait(ISSUER_ID, f"replace-{damaged}")
    assert view.ref.replaces_card_id == news[0] and view.ref.card_product_id == "DEMO_VISA_DEBIT_01"
    sent = await life.emulator_order(damaged)
    assert (sent["issuance"], sent["cardCarrier"], sent["via"]) == ("REPLACEMENT", "carrier-welcome-en", "single")
    assert sent["deliveryAddress"]["city"] == "New York"


async def test_a_returned_card_is_reshipped_to_a_corrected_address_in_one_action(life: Life) -> None:
    rid = new_request_id("back")
    returned = f"emu-returned-{rid}"
    await life.orders.submit(sample_order(rid, card_id=returned))
    assert (await life.orders.wait(ISSUER_ID, rid)).state.outcome == Outcome.RETURNED
    found = await life.orders.list(f'IssuerRequestId = "{rid}" AND OrderOutcome = "RETURNED"')
    for _ in range(50):
        if found:
            break
        await asyncio.sleep(0.1)
        found = await life.orders.list(f'IssuerRequestId = "{rid}" AND OrderOutcome = "RETURNED"')
    assert len(found) == 1

    new = f"card-{new_request_id('reship')}"
    submitted = await life.orders.reship(ISSUER_ID, returned, ADDRESS, new_card_id=new, card_data=NEW_CARD)
    view = await life.orders.wait(ISSUER_ID, f"reship-{new}")
    assert submitted.created and view.state.outcome == Outcome.DELIVERED
    assert (view.ref.replaces_card_id, view.ref.replacement_reason) == (returned, "RETURNED")
    sent = await life.emulator_order(new)
    assert sent["deliveryAddress"]["city"] == "Boston" and sent["issuance"] == "REPLACEMENT"

    # The address-change controls apply: a country the program does not ship to is refused.
    from d1.validation import InvalidOrder

    with pytest.raises(InvalidOrder):
        await life.orders.reship(
            ISSUER_ID, returned, {**ADDRESS, "countryCode": "JP"}, new_card_id=f"{new}-2", card_data=NEW_CARD
        )
    # Only a card that never arrived is re-shipped.
    delivered, _ = await delivered_card(life)
    with pytest.raises(OrderRefused, match="not returned nor lost"):
        await life.orders.reship(ISSUER_ID, delivered, ADDRESS, new_card_id=f"{new}-3", card_data=NEW_CARD)


async def test_a_card_lost_in_transit_is_reshipped_as_such(life: Life) -> None:
    rid = new_request_id("lost")
    lost = f"emu-not-delivered-{rid}"
    saved = life.orders.timing
    # One silence timer covers a window: a short reconcile window lets the quiet end come soon.
    life.orders.timing = fast_timing(quiet_after_shipped=timedelta(seconds=2), reconcile_after=timedelta(seconds=3))
    try:
        await life.orders.submit(sample_order(rid, card_id=lost))
    finally:
        life.orders.timing = saved
    assert (await life.orders.wait(ISSUER_ID, rid)).state.outcome == Outcome.LOST_IN_TRANSIT
    new = f"card-{new_request_id('again')}"
    await life.orders.reship(ISSUER_ID, lost, ADDRESS, new_card_id=new, card_data=NEW_CARD)
    view = await life.orders.status(ISSUER_ID, f"reship-{new}")
    assert (view.ref.replaces_card_id, view.ref.replacement_reason) == (lost, "LOST_IN_TRANSIT")


async def test_a_renewal_campaign_file_and_a_reship_from_the_cli(
    life: Life, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in life.cli_env().items():
        monkeypatch.setenv(key, value)
    olds = await asyncio.gather(*(delivered_card(life, "file") for _ in range(2)))
    news = [f"card-{new_request_id('filed')}" for _ in olds]
    campaign = tmp_path / "renewals.jsonl"
    lines = [{"cardId": old, "newCardId": new, "cardData": NEW_CARD} for (old, _), new in zip(olds, news, strict=True)]
    campaign.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert await cli.run(["renew-batch", str(campaign)]) == 0
    out = capsys.readouterr().out
    assert "2 renewal(s) started of 2; D1 batches: d1-batch:" in out
    for new in news:
        assert (await life.orders.wait(ISSUER_ID, f"renew-{new}")).state.outcome == Outcome.DELIVERED

    rid = new_request_id("cliback")
    returned = f"emu-returned-{rid}"
    await life.orders.submit(sample_order(rid, card_id=returned))
    assert (await life.orders.wait(ISSUER_ID, rid)).state.outcome == Outcome.RETURNED
    card_file, address_file = tmp_path / "card.json", tmp_path / "address.json"
    card_file.write_text(json.dumps(NEW_CARD), encoding="utf-8")
    address_file.write_text(json.dumps(ADDRESS), encoding="utf-8")
    new = f"card-{new_request_id('clireship')}"
    argv = ["reship", returned, "--address", str(address_file), "--new-card-id", new, "--card-data", str(card_file)]
    assert await cli.run(argv) == 0
    assert f"reship-{new} started" in capsys.readouterr().out
    await life.orders.wait_for(ISSUER_ID, f"reship-{new}", lambda v: v.state.submitted)
    assert (await life.emulator_order(new))["deliveryAddress"]["city"] == "Boston"
