"""The events row of ``make bench`` (bench/events.py): its pure parts, without a stack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bench.events import completeness, event_targets, lags_s, steady_rate
from bench.load import OrdersRun
from bench.stats import latency_summary_ms

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def record(wid: str, seq: int, lag_s: float = 0.5, card: str | None = None) -> dict[str, Any]:
    return {
        "id": f"evt_{wid}_{seq}",
        "type": "order.created",
        "workflow_id": wid,
        "card_id": card or f"card-{wid}",
        "sequence": seq,
        "emitted_at": (T0 + timedelta(seconds=seq)).isoformat(),
        "verified_at": (T0 + timedelta(seconds=seq + lag_s)).timestamp(),
    }


def test_lag_is_emitted_to_verified() -> None:
    records = [record("a", i, lag_s=0.1 * i) for i in range(1, 101)]
    lags = lags_s(records)
    assert [round(x, 6) for x in lags[:3]] == [0.1, 0.2, 0.3]
    summary = latency_summary_ms(lags)
    assert summary["p50_ms"] == 5000.0  # nearest rank: the 50th of 100
    assert summary["p99_ms"] == 9900.0


def test_complete_when_every_order_has_its_events_in_order() -> None:
    records = [record(w, i + 3 * n) for n, w in enumerate(("a", "b")) for i in range(1, 4)]
    got = completeness(records, ["a", "b"], numbered=6)
    assert got["ok"] and got["events_per_order"] == 3 and got["missing"] == 0


def test_a_missing_event_fails_the_row() -> None:
    records = [record(w, i + 3 * n) for n, w in enumerate(("a", "b")) for i in range(1, 4)][:-1]
    got = completeness(records, ["a", "b"], numbered=6)
    assert not got["ok"]
    assert got["missing"] == 1 and got["orders_with_other_count"] == 1
    assert got["orders_with_other_count_sample"] == ["b"]


def test_an_order_without_events_fails_the_row() -> None:
    records = [record("a", i) for i in range(1, 4)]
    got = completeness(records, ["a", "b"], numbered=3)
    assert not got["ok"] and got["orders_with_other_count"] == 1


def test_a_card_out_of_order_fails_the_row() -> None:
    records = [record("a", 2), record("a", 1), record("a", 3)]
    got = completeness(records, ["a"], numbered=3)
    assert not got["ok"] and got["out_of_order"] == 1


def test_nothing_delivered_is_not_complete() -> None:
    assert not completeness([], ["a"], numbered=0)["ok"]
    assert not completeness([], [], numbered=0)["ok"]


def test_steady_rate_leaves_out_each_rounds_ramps() -> None:
    first = OrdersRun(orders=20, concurrency=4, wall_s=100.0, done_at=[50.0] + [100.0 + i for i in range(19)])
    second = OrdersRun(orders=20, concurrency=4, wall_s=100.0, done_at=[500.0 + 2 * i for i in range(20)])
    # From the 3rd to the 18th completion of each round: 15 orders in 15 s, then 15 in 30 s.
    assert steady_rate([first]) == 1.0
    assert steady_rate([second]) == 0.5
    assert round(steady_rate([first, second]), 4) == round(30 / 45, 4)


def test_steady_rate_of_a_small_round_is_its_whole_rate() -> None:
    assert steady_rate([OrdersRun(orders=4, concurrency=4, wall_s=2.0, done_at=[1.0, 1.0, 2.0, 2.0])]) == 2.0
    assert steady_rate([]) == 0.0


def row(ratio_: float | None, p99: float | None, ok: bool = True) -> dict[str, Any]:
    return {
        "throughput_ratio": ratio_,
        "on": {"lag": {"p99_ms": p99}, "notifications_per_s": 90.0},
        "delivery": {"ok": ok},
    }


def test_targets_of_the_row() -> None:
    names = [t[0] for t in event_targets(row(0.9, 1500.0))]
    assert len(names) == 3 and all(n.startswith("events:") for n in names)
    assert [t[3] for t in event_targets(row(0.9, 1500.0))] == [True, True, True]
    assert [t[3] for t in event_targets(row(0.85, 2000.0))] == [True, True, True]
    assert [t[3] for t in event_targets(row(0.84, 2000.1, ok=False))] == [False, False, False]
    assert [t[3] for t in event_targets(row(None, None))] == [None, None, True]
    assert "90 notifications/s" in names[1]


def test_events_of_other_orders_count_toward_the_hubs_total_only() -> None:
    """An order of an earlier phase still open emits too: the endpoint is owed its events."""
    records = [record("a", 1), record("a", 2), record("old", 3)]
    got = completeness(records, ["a"], numbered=3)
    assert got["ok"] and got["events_per_order"] == 2
    assert not completeness(records, ["a"], numbered=4)["ok"]
