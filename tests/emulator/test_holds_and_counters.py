"""What exactly-once is measured with: per-card, per-request-id counters, and requests held
open until a test releases them (a crash test kills its client at that moment)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from emulator_support import ISSUER_ID, Emulator

from d1.paths import batch_order_path


async def _holds(emu: Emulator) -> dict[str, Any]:
    body: dict[str, Any] = (await emu.client.get("/_emulator/holds")).json()
    return body


async def _until_held(emu: Emulator, n: int = 1) -> list[dict[str, Any]]:
    async with asyncio.timeout(5):  # TimeoutError here: the request was never held
        while len(holds := (await _holds(emu))["holds"]) < n:
            await asyncio.sleep(0.01)
    return holds


async def test_counters_break_requests_down_by_card_and_request_id(emu: Emulator) -> None:
    token = await emu.token()
    assert (await emu.order(token)).status_code == 202
    assert (await emu.order(token)).status_code == 202  # the same request again
    other = await emu.order(token, body=emu.order_body("req-0002"))  # another request, card still open
    assert other.status_code == 409
    card = (await emu.stats())["cards"]["card-0001"]
    assert (card["accepted"], card["repeats"], card["refused"]) == (1, 1, 1)
    assert card["requests"] == {
        "req-0001": {"first": 1, "repeat": 1, "refused": 0},
        "req-0002": {"first": 0, "repeat": 0, "refused": 1},
    }


async def test_a_held_request_is_processed_and_answered_only_when_released(emu: Emulator) -> None:
    await emu.faults(orderFailures=[{"hold": True, "afterProcessing": True}])
    token = await emu.token()
    answer = asyncio.create_task(emu.order(token))
    [held] = await _until_held(emu)
    assert (held["kind"], held["cardId"], held["processed"], held["clientGone"]) == ("order", "card-0001", True, False)
    assert (await emu.stats())["cards"]["card-0001"]["accepted"] == 1  # D1 has taken it ...
    assert not answer.done()  # ... and not answered
    released = (await emu.client.post("/_emulator/holds/release", json={"ids": [held["id"]]})).json()
    assert released["releasedNow"] == 1 and released["holds"] == []
    assert (await asyncio.wait_for(answer, 5)).status_code == 202
    assert (await _holds(emu))["held"] == 1


async def test_a_hold_before_processing_accepts_nothing_until_released(emu: Emulator) -> None:
    await emu.faults(orderFailures=[{"hold": True}])
    token = await emu.token()
    answer = asyncio.create_task(emu.order(token))
    [held] = await _until_held(emu)
    assert held["processed"] is False
    assert "card-0001" not in (await emu.stats())["cards"]
    await emu.client.post("/_emulator/holds/release")
    assert (await asyncio.wait_for(answer, 5)).status_code == 202
    assert (await emu.stats())["cards"]["card-0001"]["accepted"] == 1


async def test_a_held_request_shows_its_client_gone(emu: Emulator) -> None:
    await emu.faults(batchFailures=[{"hold": True, "afterProcessing": True}])
    token = await emu.token()
    client = httpx.AsyncClient(base_url=emu.base_url, timeout=30)
    body = {"cards": [emu.batch_item("card-0001")]}
    headers = {"authorization": f"Bearer {token}"}
    call = asyncio.create_task(client.post("/banking/v1" + batch_order_path(ISSUER_ID), json=body, headers=headers))
    [held] = await _until_held(emu)
    assert (held["kind"], held["cardId"], held["clientGone"]) == ("batch", None, False)
    call.cancel()
    await client.aclose()  # as a killed worker's connection closes
    async with asyncio.timeout(5):  # TimeoutError here: the disconnect was not noticed
        while not (await _holds(emu))["holds"][0]["clientGone"]:
            await asyncio.sleep(0.01)
    await emu.client.post("/_emulator/holds/release")
    assert (await _holds(emu))["holds"] == []
    assert (await emu.stats())["cards"]["card-0001"]["accepted"] == 1


async def test_a_delay_after_processing_comes_after_the_order_is_taken(emu: Emulator) -> None:
    await emu.faults(orderFailures=[{"status": 503, "afterProcessing": True, "delayMs": 2000}])
    token = await emu.token()
    answer = asyncio.create_task(emu.order(token))
    async with asyncio.timeout(1.5):  # TimeoutError here: the delay came before processing
        while "card-0001" not in (await emu.stats())["cards"]:
            await asyncio.sleep(0.01)
    assert not answer.done()
    assert (await asyncio.wait_for(answer, 5)).status_code == 503


async def test_reset_releases_held_requests(emu: Emulator) -> None:
    await emu.faults(orderFailures=[{"hold": True}])
    token = await emu.token()
    answer = asyncio.create_task(emu.order(token))
    await _until_held(emu)
    await emu.client.post("/_emulator/reset")
    assert (await asyncio.wait_for(answer, 5)).status_code == 202
    assert (await _holds(emu)) == {"holds": [], "held": 0, "released": 0}


async def test_failed_deliveries_are_counted(emu: Emulator) -> None:
    emu.receiver.fail_first = 2
    token = await emu.token()
    await emu.order(token)
    await emu.receiver.wait_for(lambda ops: len(ops) >= 1)
    assert (await emu.stats())["notificationFailures"] == 2
