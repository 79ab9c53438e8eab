"""Percentiles and rates, computed the same way for every phase."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every reported value was observed)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary_ms(values_s: Sequence[float]) -> dict[str, float | int | None]:
    def ms(v: float | None) -> float | None:
        return round(v * 1000, 1) if v is not None else None

    return {
        "count": len(values_s),
        "p50_ms": ms(percentile(values_s, 50)),
        "p95_ms": ms(percentile(values_s, 95)),
        "p99_ms": ms(percentile(values_s, 99)),
        "max_ms": ms(max(values_s) if values_s else None),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def sum_present(*values: float | None) -> float | None:
    """The sum of the values that were measured (the orders' worker and, where it runs apart,
    the events' worker); None when none was."""
    present = [v for v in values if v is not None]
    return sum(present) if present else None
