"""Exactly-once, read from what D1 (the emulator) counted (emulator/README.md, admin API).

For each card: D1 accepted it once and produced it once, every request for it carried the
order's own issuerRequestId and none was refused, and D1 saw a bounded number of repeats
(at least one where the test forced a retry). A worker that submits twice shows as a second
request id, a refusal or one repeat per card; a D1 that makes a second order of a repeat
as ``accepted == 2``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from tests.support.orders import sample_order

T = TypeVar("T")


def card_of(request_id: str) -> str:
    """The cardId of ``sample_order(request_id)``."""
    card_id: str = sample_order(request_id)["cardId"]
    return card_id


def exactly_once_problems(
    stats: dict[str, Any],
    cards: dict[str, str],
    *,
    forced: Iterable[str] = (),
    max_repeats: int = 0,
    max_total_repeats: int | None = None,
) -> list[str]:
    """``cards``: cardId -> its issuerRequestId. ``forced``: cards whose retry the test forced
    (at least one repeat). ``max_repeats``: per card, beyond the forced one."""
    forced = set(forced)
    problems: list[str] = []
    total = 0
    for card_id, rid in cards.items():
        counters = stats["cards"].get(card_id)
        if counters is None:
            problems.append(f"{card_id}: D1 never processed a request for it")
            continue
        requests = counters["requests"]
        total += counters["repeats"]
        allowed = max_repeats + (1 if card_id in forced else 0)
        if (counters["accepted"], counters["produced"], counters["refused"]) != (1, 1, 0):
            problems.append(
                f"{card_id}: accepted {counters['accepted']}, produced {counters['produced']}, "
                f"refused {counters['refused']} (expected 1, 1, 0)"
            )
        if set(requests) != {rid}:
            problems.append(f"{card_id}: requests under {sorted(requests)}, expected only {rid!r}")
        if card_id in forced and counters["repeats"] < 1:
            problems.append(f"{card_id}: its retry was forced, but D1 saw no repeat")
        if counters["repeats"] > allowed:
            problems.append(f"{card_id}: {counters['repeats']} repeats (at most {allowed})")
    if max_total_repeats is not None and total > max_total_repeats:
        problems.append(f"{total} repeats over {len(cards)} cards (at most {max_total_repeats})")
    return problems


def assert_exactly_once(stats: dict[str, Any], cards: dict[str, str], **bounds: Any) -> None:
    problems = exactly_once_problems(stats, cards, **bounds)
    assert not problems, f"{len(problems)} problem(s): " + "; ".join(problems[:10])


def by_card(request_ids: Iterable[str]) -> dict[str, str]:
    """cardId -> issuerRequestId for orders made with ``sample_order(rid)``."""
    return {card_of(rid): rid for rid in request_ids}


async def until(check: Callable[[], Awaitable[T]], *, timeout: float, what: str, every: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"within {timeout:g} s: {what}")
        await asyncio.sleep(every)


async def all_produced(stats: Callable[[], Awaitable[dict[str, Any]]], cards: Iterable[str], timeout: float) -> None:
    """Production runs on in D1 after the order was accepted: wait until each card reached
    CARD_PROD_DONE (or fail naming how many did not)."""
    cards = list(cards)
    missing = cards

    async def done() -> bool:
        nonlocal missing
        seen = (await stats())["cards"]
        missing = [c for c in missing if seen.get(c, {}).get("produced", 0) < 1]
        return not missing

    try:
        await until(done, timeout=timeout, what="D1 did not produce every card", every=0.2)
    except AssertionError as err:
        raise AssertionError(f"{err}: {len(missing)} of {len(cards)} not produced, e.g. {missing[:3]}") from None
