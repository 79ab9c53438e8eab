"""What the receiver counts for D1's Card Activation calls (observability/metrics.py): every call
by outcome, and those before delivery apart, under the name the alert rule watches
(the alert rule CardActivatedBeforeDelivery)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from observability import names
from observability.metrics import ProductMetrics


class _Counter:
    def __init__(self, name: str, seen: Counter[tuple[str, tuple[tuple[str, str], ...]]]) -> None:
        self.name, self.seen = name, seen

    def add(self, value: int, attributes: dict[str, str]) -> None:
        self.seen[(self.name, tuple(sorted(attributes.items())))] += value


class _Meter:
    def __init__(self) -> None:
        self.seen: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def create_counter(self, name: str, description: str, *_: Any) -> _Counter:
        assert description
        return _Counter(name, self.seen)


def test_activations_before_delivery_are_counted_apart() -> None:
    meter = _Meter()
    metrics = ProductMetrics(meter)  # type: ignore[arg-type]
    for outcome in ("activated", "activated_before_delivery", "refused_before_delivery", "cms_unavailable"):
        metrics.activation("TESTISS001", outcome)
    by_name = Counter(name for name, _ in meter.seen.elements())
    assert by_name == {names.CARD_ACTIVATIONS: 4, names.ACTIVATIONS_BEFORE_DELIVERY: 2}
    early = {dict(attrs)["refused"] for name, attrs in meter.seen if name == names.ACTIVATIONS_BEFORE_DELIVERY}
    assert early == {"true", "false"}
    assert names.ACTIVATIONS_BEFORE_DELIVERY == "card_orders_activations_before_delivery"
