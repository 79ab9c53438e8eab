"""What the emit activity's result, the one payload an order's history keeps of a batch of
events (events/contract.py ``emitted``), says: pure, no Temporal."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from events.catalogue import ALL_TYPES, Event
from events.contract import EMITTED_MAX_CHARS, emitted

AT = datetime(2026, 12, 7, 8, 0, tzinfo=UTC).isoformat()


def events_of(*types: str) -> list[Event]:
    return [
        Event(
            id=f"evt-{i}",
            type=t,
            occurred_at=AT,
            emitted_at=AT,
            issuer_id="ISS",
            card_id="card-1",
            workflow_id="card-order:ISS:req-1",
        )
        for i, t in enumerate(types)
    ]


def test_the_result_names_each_type_in_order_and_counts_a_run_of_one_type() -> None:
    assert emitted(events_of("order.created")) == "order.created"
    assert emitted(events_of("order.shipped", "order.shipment_updated")) == "order.shipped, order.shipment_updated"
    four = events_of(*["order.production_status_changed"] * 4)
    assert emitted(four) == "order.production_status_changed x4"
    mixed = events_of("order.shipment_updated", "order.shipment_updated", "order.delivered", "order.shipment_updated")
    assert emitted(mixed) == "order.shipment_updated x2, order.delivered, order.shipment_updated"


def test_an_empty_result_means_events_are_off_and_is_never_the_result_of_a_batch() -> None:
    assert emitted([]) == ""


@given(st.lists(st.sampled_from(ALL_TYPES), min_size=1, max_size=60))
def test_a_long_batch_names_its_count_and_last_type(types: list[str]) -> None:
    text = emitted(events_of(*types))
    assert text and len(text) <= EMITTED_MAX_CHARS
    if text.endswith(f"the last {types[-1]}") and text.startswith(f"{len(types)} events"):
        return
    named = [part.rsplit(" x", 1) for part in text.split(", ")]
    assert [t for t, *n in named for _ in range(int(n[0]) if n else 1)] == types
