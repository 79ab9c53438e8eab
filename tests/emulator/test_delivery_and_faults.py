"""Notification delivery (retries, capture, drop) and injected faults."""

from __future__ import annotations

import asyncio
from typing import Any

from emulator_support import Emulator


def _delivered(ops: list[dict[str, Any]]) -> bool:
    return any((op["details"].get("shipment") or {}).get("status") == "Delivered" for op in ops)


def _is_delivered(op: dict[str, Any]) -> bool:
    return (op["details"].get("shipment") or {}).get("status") == "Delivered"


async def test_injected_order_failures_then_success(emu: Emulator) -> None:
    await emu.faults(orderFailures=[{"status": 503, "count": 2}, {"status": 500, "count": 1}])
    token = await emu.token()
    answers = [await emu.order(token) for _ in range(4)]
    assert [r.status_code for r in answers] == [503, 503, 500, 202]
    assert answers[0].json() == {"errorCode": "SERVER_ERROR", "error": "injected"}
    stats = await emu.stats()
    assert stats["orderRequests"] == 4
    assert stats["submissions"] == {"req-0001": 1}
    assert stats["repeats"] == {}


async def test_failure_after_processing_is_resolved_by_an_idempotent_retry(emu: Emulator) -> None:
    await emu.faults(orderFailures=[{"status": 500, "afterProcessing": True}])
    token = await emu.token()
    ambiguous = await emu.order(token)
    assert ambiguous.status_code == 500
    retry = await emu.order(token)
    assert retry.status_code == 202
    status = (await emu.status(token)).json()["operations"][0]
    assert status["operationId"] == retry.json()["operationId"]
    stats = await emu.stats()
    assert stats["submissions"] == {"req-0001": 1}
    assert stats["repeats"] == {"req-0001": 1}


async def test_injected_status_failures(emu: Emulator) -> None:
    token = await emu.token()
    assert (await emu.order(token)).status_code == 202
    await emu.faults(statusFailures=[{"status": 502, "count": 1}])
    assert (await emu.status(token)).status_code == 502
    assert (await emu.status(token)).status_code == 200


async def test_dropped_notifications_leave_only_production_status(emu: Emulator) -> None:
    await emu.faults(dropNotifications=True)
    token = await emu.token()
    operation_id = (await emu.order(token)).json()["operationId"]
    seen: list[str] = []

    def progressed(op: dict[str, Any]) -> bool:
        step = op["details"]["status"]
        if not seen or seen[-1] != step:
            seen.append(step)
        return _is_delivered(op)

    final = await emu.wait_status(token, progressed)
    assert final["operationId"] == operation_id
    assert final["status"] == "SUCCESSFUL"
    assert len(seen) >= 3  # polling saw the order advance, not just the end state
    assert emu.receiver.calls == 0
    stats = await emu.stats()
    assert stats["notificationsSent"] == 0
    assert stats["notificationAttempts"] == 0
    assert stats["notificationsDropped"] == 9


async def test_receiver_errors_are_retried_in_order(emu: Emulator) -> None:
    emu.receiver.fail_first = 4
    token = await emu.token()
    await emu.order(token)
    await emu.receiver.wait_for(_delivered)
    steps = [
        (op["details"]["status"], (op["details"].get("shipment") or {}).get("status"))
        for op in emu.receiver.operations()
    ]
    assert len(steps) == 9 and len(set(steps)) == 9  # each update once, none skipped
    assert steps[0] == ("CARD_PROD_REQUESTED", None) and steps[-1] == ("CARD_SHIPPED", "Delivered")
    stats = await emu.stats()
    assert stats["notificationsSent"] == 9
    assert stats["notificationAttempts"] == 13
    assert stats["notificationsPending"] == 0


async def test_unreachable_receiver_gives_up_and_state_still_advances(emulator_factory: Any) -> None:
    emu: Emulator = await emulator_factory(receiver_url="http://127.0.0.1:9", notify_give_up_s=0.05)
    token = await emu.token()
    await emu.order(token)
    await emu.wait_status(token, _is_delivered)
    async with asyncio.timeout(5):
        while (await emu.stats())["notificationsPending"]:
            await asyncio.sleep(0.05)
    stats = await emu.stats()
    assert stats["notificationsSent"] == 0
    assert stats["notificationsGivenUp"] == 9
    assert stats["notificationAttempts"] >= 9


async def test_capture_mode_records_bodies_instead_of_sending(emulator_factory: Any) -> None:
    emu: Emulator = await emulator_factory(notification_mode="capture")
    token = await emu.token()
    await emu.order(token)
    await emu.wait_status(token, _is_delivered)
    captured = (await emu.client.get("/_emulator/captured")).json()
    assert len(captured) == 9
    assert all(set(body) == {"operations"} and len(body["operations"]) == 1 for body in captured)
    assert captured[-1]["operations"][0]["details"]["shipment"]["status"] == "Delivered"
    assert emu.receiver.calls == 0


async def test_data_exception_fault_fails_the_order(emu: Emulator) -> None:
    await emu.faults(dataExceptions=1)
    token = await emu.token()
    await emu.order(token)
    await emu.receiver.wait_for(lambda ops: any(op["status"] == "FAILED" for op in ops))
    ops = emu.receiver.operations()
    assert [op["details"]["status"] for op in ops] == ["CARD_PROD_REQUESTED", "DATA_EXCEPTION"]
    failed = ops[-1]
    assert failed["errorCode"] and failed["error"] and failed["endTime"] and failed["details"]["reason"]
    # A finished (failed) order frees the card for a new request.
    assert (await emu.order(token, body=emu.order_body("req-0002"))).status_code == 202


async def test_step_delay_can_change_at_run_time(emu: Emulator) -> None:
    await emu.faults(stepDelayMs=60_000)
    token = await emu.token()
    await emu.order(token)
    await emu.receiver.wait_for(lambda ops: len(ops) == 1)
    status = (await emu.status(token)).json()["operations"][0]
    assert status["details"]["status"] == "CARD_PROD_REQUESTED"
    faults = (await emu.client.get("/_emulator/faults")).json()
    assert faults["stepDelayMs"] == 60_000


async def test_reset_and_admin_helpers(emu: Emulator) -> None:
    assert (await emu.client.get("/_emulator/health")).status_code == 200
    public = (await emu.client.get("/_emulator/public-key")).json()
    assert public["kid"].startswith("d1-enc-") and "d" not in public
    assert (await emu.client.post("/_emulator/faults", json={"orderFailure": []})).status_code == 400

    await emu.faults(orderFailures=[{"status": 503, "count": 5}])
    token = await emu.token()
    await emu.order(token)
    assert (await emu.client.post("/_emulator/reset")).json() == {"reset": True, "orders": False}
    stats = await emu.stats()
    assert stats["orderRequests"] == 0 and stats["tokenRequests"] == 0
    assert (await emu.order(token)).status_code == 202  # faults cleared, token still valid
    assert (await emu.client.get("/_emulator/orders")).json()["orders"][0]["cardId"] == "card-0001"

    assert (await emu.client.post("/_emulator/reset", json={"orders": True})).status_code == 200
    assert (await emu.status(token)).status_code == 404
    assert (await emu.stats())["simulationsRunning"] == 0
