"""D1's batch "Order cards" API on the real server: a file of orders goes out in a few D1
calls, each card is still its own order, and nothing is ever produced twice (the
emulator's per-card counters prove it)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from jwcrypto import jwk

from contracts.card_order import OrderResult, OrderTiming, Outcome
from d1.program import DEFAULT_PROGRAM_FILE
from starter.api import CardOrders
from starter.d1_batches import BatchLimits
from starter.edge import OrderEdge
from starter.order_file import FileReport, submit_file
from tests.conftest import ISSUER_ID, TASK_QUEUE, Stack, fast_timing
from tests.support.orders import sample_order

CARDS = 2500


def write_jsonl(path: Path, orders: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(o) for o in orders) + "\n")
    return path


def _orders_file(tmp_path: Path, n: int, prefix: str) -> tuple[Path, list[str]]:
    run = uuid.uuid4().hex[:8]
    rids = [f"{prefix}-{run}-{i:05d}" for i in range(n)]
    return write_jsonl(tmp_path / f"{prefix}.jsonl", [sample_order(rid, card_id=f"c-{rid}") for rid in rids]), rids


async def _stats(stack: Stack) -> dict[str, Any]:
    return await stack.emulator_stats()


def _accepted(stats: dict[str, Any], rids: list[str]) -> dict[str, int]:
    cards = stats.get("cards", {})
    return {rid: cards.get(f"c-{rid}", {}).get("accepted", 0) for rid in rids}


async def _outcomes(orders: CardOrders, rids: list[str], *, timeout: float) -> list[OrderResult]:
    gate = asyncio.Semaphore(64)

    async def one(rid: str) -> OrderResult:
        async with gate:
            return await orders.outcome(ISSUER_ID, rid)

    return await asyncio.wait_for(asyncio.gather(*(one(r) for r in rids)), timeout=timeout)


async def test_2500_cards_go_out_in_3_d1_calls_each_is_delivered_and_a_rerun_sends_nothing(
    stack: Stack, clean_emulator: Stack, tmp_path: Path
) -> None:
    path, rids = _orders_file(tmp_path, CARDS, "b25")
    await stack.emulator("POST", "/_emulator/faults", json={"stepDelayMs": 0})
    before = await _stats(stack)
    report: FileReport = await submit_file(
        stack.orders, path, default_issuer_id=ISSUER_ID, d1_batches=BatchLimits(), show_progress=False
    )
    assert report.exit_code == 0, report.summary()
    assert (report.started, report.d1_batches, report.d1_batches_new) == (CARDS, 3, 3), report.summary()
    results = await _outcomes(stack.orders, rids, timeout=900)
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    after = await _stats(stack)
    assert after["batchRequests"] - before["batchRequests"] == 3
    assert after["batchCards"] - before["batchCards"] == CARDS
    assert after["orderRequests"] == before["orderRequests"]  # no card called D1 on its own
    assert set(_accepted(after, rids).values()) == {1}

    # Re-running the file finds every order and every batch: D1 hears nothing new.
    again = await submit_file(
        stack.orders, path, default_issuer_id=ISSUER_ID, d1_batches=BatchLimits(), show_progress=False
    )
    assert (again.started, again.existing, again.d1_batches_new) == (0, CARDS, 0), again.summary()
    assert (await _stats(stack))["batchRequests"] == after["batchRequests"]


async def test_a_503_burst_on_the_batch_call_is_retried_and_submits_each_card_once(
    stack: Stack, clean_emulator: Stack, tmp_path: Path
) -> None:
    path, rids = _orders_file(tmp_path, 40, "b503")
    await stack.emulator(
        "POST",
        "/_emulator/faults",
        json={"dropNotifications": True, "batchFailures": [{"status": 503, "count": 3, "retryAfterS": 0}]},
    )
    before = await _stats(stack)
    report = await submit_file(
        stack.orders, path, default_issuer_id=ISSUER_ID, d1_batches=BatchLimits(), show_progress=False
    )
    assert report.exit_code == 0 and report.d1_batches == 1, report.summary()
    await asyncio.wait_for(
        asyncio.gather(
            *(
                stack.orders.wait_for(ISSUER_ID, rid, lambda v: v.state.operation_id is not None, timeout=120)
                for rid in rids
            )
        ),
        timeout=180,
    )
    after = await _stats(stack)
    assert after["batchRequests"] - before["batchRequests"] == 4  # three refused with 503, then accepted
    assert set(_accepted(after, rids).values()) == {1}


async def test_one_item_d1_cannot_decrypt_rejects_only_that_card(
    stack: Stack, clean_emulator: Stack, tmp_path: Path
) -> None:
    """A card encrypted for a key D1 does not know (a rotation gone wrong) is refused by D1
    with CRYPTO_ERROR: that card ends CRYPTO_REJECTED, the others of the batch go on."""
    run = uuid.uuid4().hex[:8]
    rids = [f"bitem-{run}-{i}" for i in range(5)]
    await stack.emulator("POST", "/_emulator/faults", json={"dropNotifications": True})
    timing: OrderTiming = fast_timing()
    stranger = jwk.JWK.generate(kty="EC", crv="P-256", kid="d1-enc-unknown")
    wrong_key = OrderEdge(program_file=DEFAULT_PROGRAM_FILE, encryption_key=jwk.JWK.from_json(stranger.export_public()))
    prepared = [
        (wrong_key if i == 2 else stack.orders.edge).prepare(sample_order(rid, card_id=f"c-{rid}"), timing=timing)
        for i, rid in enumerate(rids)
    ]
    orders = CardOrders(stack.client, task_queue=TASK_QUEUE, timing=timing, edge=stack.orders.edge)
    results = await orders.start_many(prepared, d1_batches=BatchLimits())
    assert all(r.submitted and r.d1_batch_created for r in results) and len(results) == 5
    refused = await orders.wait(ISSUER_ID, rids[2])
    assert refused.state.outcome is Outcome.CRYPTO_REJECTED
    assert refused.state.errors[0].error_code == "CRYPTO_ERROR"
    assert refused.state.errors[0].error == "$.cards[2].encryptedData"
    for rid in rids[:2] + rids[3:]:
        view = await orders.wait_for(ISSUER_ID, rid, lambda v: v.state.operation_id is not None, timeout=60)
        assert view.state.outcome is None
    stats = await _stats(stack)
    assert _accepted(stats, rids) == {rid: (0 if i == 2 else 1) for i, rid in enumerate(rids)}
