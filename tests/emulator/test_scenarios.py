"""Exception scenarios keep working, and each says whether D1 documents its statuses."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from emulator_support import Emulator, shipment_status

from emulator.scenarios import DOCUMENTED_CENTRAL_STATUSES, OUR_READING, SCENARIO_SOURCES, ScenarioRule

# (scenario, D/G, the statuses of a PRODUCE operation it sends that D1 does not document for
#  central issuance, the last notification's (status, details.status, shipment status))
SCENARIOS: list[tuple[str, str, set[str], tuple[str, str, str | None]]] = [
    ("DATA_EXCEPTION", "D", set(), ("FAILED", "DATA_EXCEPTION", None)),
    ("CARD_PROD_EXCEPTION", "G", {"CARD_PROD_EXCEPTION"}, ("FAILED", "CARD_PROD_EXCEPTION", None)),
    ("ON_HOLD", "G", {"CARD_PROD_ON_HOLD"}, ("SUCCESSFUL", "CARD_SHIPPED", "Delivered")),
    ("RETURNED", "G", {"CARD_RETURNED"}, ("SUCCESSFUL", "CARD_RETURNED", "Returned")),
    # Documented statuses only, but an undocumented carrier status (Exception) and silence.
    ("NOT_DELIVERED", "G", set(), ("SUCCESSFUL", "CARD_SHIPPED", "Exception")),
]


def test_the_documented_statuses_are_the_eight_of_central_issuance() -> None:
    assert DOCUMENTED_CENTRAL_STATUSES == {
        "CARD_PROD_REQUESTED",
        "DATA_PREPARED",
        "DATA_EXCEPTION",
        "CARD_PROD_READY",
        "CARD_PROD_ONGOING",
        "CARD_PROD_DONE",
        "CARD_SHIPPED",
        "CARD_PROD_CANCELED",
    }
    assert set(OUR_READING) == {"CARD_PROD_ON_HOLD", "CARD_RETURNED", "CARD_PROD_EXCEPTION"}
    assert not DOCUMENTED_CENTRAL_STATUSES & set(OUR_READING)


@pytest.mark.parametrize(("scenario", "source", "extra", "last"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
async def test_scenario_runs_and_is_marked(
    emu: Emulator, scenario: str, source: str, extra: set[str], last: tuple[str, str, str | None]
) -> None:
    card_id = f"card-{scenario.lower().replace('_', '-')}"
    rule = {"match": {"cardIdPrefix": card_id}, "scenario": scenario, "holdMs": 50}
    assert (await emu.client.post("/_emulator/scenarios", json={"rules": [rule]})).status_code == 200
    token = await emu.token()
    assert (await emu.order(token, card_id=card_id)).status_code == 202
    await emu.wait_status(token, lambda op: True, card_id=card_id)
    order = emu.state.orders.latest("TESTISS001", card_id)
    assert order is not None

    async def finished() -> None:
        while not order.finished or (await emu.stats())["notificationsPending"]:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(finished(), 10)
    ops: list[dict[str, Any]] = [op for op in emu.receiver.operations() if op["cardId"] == card_id]
    statuses = {op["details"]["status"] for op in ops}
    # Everything it sends is either documented or one of our readings, and its own extras appear.
    assert statuses - DOCUMENTED_CENTRAL_STATUSES == extra
    assert extra <= set(OUR_READING)
    assert (ops[-1]["status"], ops[-1]["details"]["status"], shipment_status(ops[-1])) == last
    # The scenario's reason is told: in details.reason, or as the carrier's message.
    reason = ScenarioRule.model_validate(rule).default_reason
    told = {op["details"].get("reason") for op in ops} | {
        (op["details"].get("shipment") or {}).get("message") for op in ops
    }
    assert reason in told
    assert SCENARIO_SOURCES[scenario]["source"] == source
