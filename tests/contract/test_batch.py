"""Batch submission: every line validated first (bad ones reported by line number, nothing
started for them), bounded concurrency, and a re-run after an interruption starts each
order exactly once (the emulator's per-card counters prove it)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts.card_order import workflow_id as workflow_id_for
from starter import cli
from starter.api import CardOrders
from starter.order_file import FileReport, Progress, start_lines, submit_file, validate_file
from tests.conftest import ISSUER_ID, TASK_QUEUE, Stack, fast_timing
from tests.support.exactly_once import all_produced, assert_exactly_once, until
from tests.support.orders import TEST_PAN, sample_order


def write_jsonl(path: Path, orders: list[dict[str, Any] | str]) -> Path:
    path.write_text("\n".join(o if isinstance(o, str) else json.dumps(o) for o in orders) + "\n")
    return path


def test_every_line_is_validated_and_bad_lines_are_reported_by_number(tmp_path: Path) -> None:
    good = [sample_order(f"req-b-{i}", card_id=f"card-b-{i}") for i in range(3)]
    bad_pan = sample_order("req-b-bad", card_id="card-b-bad")
    bad_pan["cardData"]["pan"] = "4111111111111112"
    bad_pan["services"]["delivery"] = "pigeon"
    same_rid_other_order = sample_order("req-b-0", card_id="card-b-other")
    same_card = sample_order("req-b-x", card_id="card-b-1")
    path = write_jsonl(
        tmp_path / "orders.jsonl",
        [good[0], good[1], bad_pan, "{not json", "", good[2], good[0], same_rid_other_order, same_card, "[1]"],
    )
    lines, report = validate_file(path, fmt="jsonl", default_issuer_id=ISSUER_ID)
    assert [line.line for line in lines] == [1, 2, 6]
    invalid = {p.line: p.problems for p in report.invalid}
    assert sorted(invalid) == [3, 4, 8, 9, 10]
    assert invalid[3] == [
        "$.cardData.pan: fails the Luhn check digit",
        "$.services.delivery: is not a shipping method configured for this program",
    ]
    assert invalid[4] == ["$: the line is not valid JSON"]
    assert "line 1" in invalid[8][0] and invalid[8][0].startswith("$.issuerRequestId")
    assert invalid[9][0].startswith("$.cardId: is already ordered by line 2")
    assert invalid[10] == ["$: an order must be a JSON object"]
    assert [(d.line, d.problems) for d in report.duplicates] == [(7, ["same order as line 1"])]
    assert report.lines == 9 and report.valid == 3
    summary = report.summary()
    assert "line 3: $.cardData.pan: fails the Luhn check digit" in summary
    assert TEST_PAN not in summary and TEST_PAN[:6] not in json.dumps(invalid)


def test_csv_rows_use_dotted_member_paths(tmp_path: Path) -> None:
    header = [
        "cardId",
        "issuerRequestId",
        "consumerId",
        "cardProductId",
        "services.issuance",
        "services.delivery",
        "services.pinMailer",
        "cardData.pan",
        "cardData.exp",
        "cardData.name",
        "paymentApplication.config",
        "paymentApplication.odaKeyIndex",
        "paymentApplication.derivationKeyIndex",
        "packagingConfig.inserts",
        "services.packaging",
        "shipment.type",
        "shipment.groupId",
        "shipment.deliveryAddress.companyName",
        "shipment.deliveryAddress.line1",
        "shipment.deliveryAddress.city",
        "shipment.deliveryAddress.zipCode",
        "shipment.deliveryAddress.countryCode",
    ]
    row = [
        "card-csv-1",
        "req-csv-1",
        "cust-000123",
        "DEMO_VISA_DEBIT_01",
        "CREATION",
        "usps-imb",
        "true",
        TEST_PAN,
        "2906",
        "JANE SAMPLE",
        "DEMO_VIS163",
        "01",
        "01",
        "welcome-letter|privacy-notice",
        "standard-envelope",
        "BULK",
        "branch-017-box-01",
        "Demo Bank Branch 017",
        "1 Plaza Ave",
        "Chicago",
        "60601",
        "US",
    ]
    bad = list(row)
    bad[header.index("issuerRequestId")], bad[header.index("cardId")] = "req-csv-2", "card-csv-2"
    bad[header.index("services.pinMailer")] = "maybe"
    bad[header.index("shipment.deliveryAddress.countryCode")] = "JP"
    buf = io.StringIO()
    csv.writer(buf).writerows([header, row, bad])
    path = tmp_path / "orders.csv"
    path.write_text(buf.getvalue())
    lines, report = validate_file(path, fmt="csv", default_issuer_id=ISSUER_ID)
    assert len(lines) == 1
    order = lines[0].order
    assert order.issuerId == ISSUER_ID  # default issuer for lines without one
    assert order.services.pinMailer is True
    assert order.packagingConfig is not None and order.packagingConfig.inserts == ["welcome-letter", "privacy-notice"]
    assert order.shipment is not None and order.shipment.groupId == "branch-017-box-01"
    assert [(p.line, p.problems) for p in report.invalid] == [
        (
            3,
            [
                "$.services.pinMailer: must be true or false (a JSON boolean)",
                "$.shipment.deliveryAddress.countryCode: is not an allowed destination country for this program",
            ],
        )
    ]


def test_samples_are_valid(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    for name, fmt in (("orders.jsonl", "jsonl"), ("orders.csv", "csv")):
        lines, report = validate_file(root / "samples" / name, fmt=fmt, default_issuer_id=ISSUER_ID)  # type: ignore[arg-type]
        assert report.invalid == [] and len(lines) == 3, report.summary()


async def test_dry_run_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = write_jsonl(tmp_path / "ok.jsonl", [sample_order("req-d-1")])
    assert await cli.run(["--issuer-id", ISSUER_ID, "submit-batch", str(ok), "--dry-run"]) == 0
    assert "dry run: nothing started" in capsys.readouterr().out
    bad = write_jsonl(tmp_path / "bad.jsonl", [sample_order("req-d-1"), "{}"])
    assert await cli.run(["--issuer-id", ISSUER_ID, "submit-batch", str(bad), "--dry-run"]) == 2
    with pytest.raises(ValueError, match="format"):
        await submit_file(None, tmp_path / "orders.txt", default_issuer_id=ISSUER_ID, dry_run=True)


# ------------------------------------------------------------------ on the real server

LINES = 1000


@pytest.mark.filterwarnings("ignore:Cannot find activity to cancel")
async def test_interrupted_1000_line_batch_rerun_starts_each_order_once(
    stack: Stack, clean_emulator: Stack, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    rids = [f"batch-{run}-{i:04d}" for i in range(LINES)]
    path = write_jsonl(tmp_path / "orders.jsonl", [sample_order(rid, card_id=f"card-{rid}") for rid in rids])
    # Thousands of orders: no notification traffic needed to prove exactly-once submission.
    await stack.emulator("POST", "/_emulator/faults", json={"dropNotifications": True})
    orders = CardOrders(
        stack.client,
        task_queue=TASK_QUEUE,
        timing=fast_timing(reconcile_after=timedelta(hours=1)),
        edge=stack.orders.edge,
    )
    try:
        lines, first = validate_file(path, fmt="jsonl", default_issuer_id=ISSUER_ID)
        assert first.valid == LINES and not first.invalid

        # First run, interrupted (as by Ctrl-C) once a few hundred orders have started.
        task = asyncio.create_task(start_lines(orders, lines, first, concurrency=32, progress=Progress(LINES)))

        async def three_hundred_started() -> bool:
            return first.started >= 300 or task.done()

        await until(three_hundred_started, timeout=600, what="the first run did not start 300 orders", every=0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert first.interrupted and 300 <= first.started < LINES

        # Re-run the whole file: started orders are recognised, the rest are started.
        second: FileReport = await submit_file(
            orders, path, default_issuer_id=ISSUER_ID, concurrency=32, show_progress=False
        )
        assert second.exit_code == 0, second.summary()
        assert second.started + second.existing == LINES
        assert second.existing >= first.started
        assert first.started + second.started <= LINES

        # A third run changes nothing.
        third = await submit_file(orders, path, default_issuer_id=ISSUER_ID, concurrency=64, show_progress=False)
        assert (third.started, third.existing) == (0, LINES)

        # Every order reached D1 exactly once: one acceptance, one production per card.
        cards = {f"card-{rid}": rid for rid in rids}
        await all_produced(stack.emulator_stats, cards, timeout=600)
        # (Repeats are possible: on an overloaded machine submit activities time out and are
        # retried, 5-6 times for a fifth of the cards in one run, and D1's idempotency absorbs
        # them; the bound only keeps a retry loop from passing.)
        assert_exactly_once(await stack.emulator_stats(), cards, max_repeats=10)
    finally:
        await stack.emulator("POST", "/_emulator/faults", json={"dropNotifications": False})
        # These orders would wait an hour for news: end them now (the session's worker is shared).
        sem = asyncio.Semaphore(50)

        async def end(rid: str) -> None:
            async with sem:
                try:
                    await stack.client.get_workflow_handle(workflow_id_for(ISSUER_ID, rid)).terminate("test cleanup")
                except Exception:  # noqa: S110 - already ended or never started
                    pass

        await asyncio.gather(*(end(rid) for rid in rids))
