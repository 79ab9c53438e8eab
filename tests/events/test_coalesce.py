"""The worker's coalescer (events/coalesce.py): group commit of emitted events, no Temporal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from temporalio.client import Client

from events import contract as c
from events.catalogue import Event
from events.coalesce import MAX_EVENTS_PER_SIGNAL, Coalescer

POLICY = c.DeliveryPolicy()
DEADLINE_S = 5.0


def event(n: int) -> Event:
    now = datetime.now(UTC).isoformat()
    return Event(
        id=f"evt_{n}", type="order.shipped", occurred_at=now, emitted_at=now, issuer_id="ISS", card_id=f"c{n}",
        workflow_id=f"card-order:ISS:r{n}",
    )  # fmt: skip


class FakeTemporal:
    """Each signal-with-start waits until the test lets it land (or fail)."""

    def __init__(self) -> None:
        self.sent: list[list[str]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.gates: list[asyncio.Future[None]] = []

    async def start_workflow(self, *args: Any, start_signal_args: list[c.EventBatch], **kwargs: Any) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.sent.append([e.id for e in start_signal_args[0].events])
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        try:
            await gate
        finally:
            self.in_flight -= 1

    async def signals(self, n: int) -> None:
        async with asyncio.timeout(DEADLINE_S):
            while len(self.gates) < n:
                await asyncio.sleep(0.001)

    def land(self, i: int, error: Exception | None = None) -> None:
        if error is None:
            self.gates[i].set_result(None)
        else:
            self.gates[i].set_exception(error)


def emitter(coalescer: Coalescer, fake: FakeTemporal) -> Any:
    def emit(*numbers: int) -> asyncio.Task[None]:
        events = [event(n) for n in numbers]
        return asyncio.create_task(coalescer.emit(cast(Client, fake), "q-events", "ISS", events))

    return emit


async def test_events_emitted_while_a_signal_is_in_flight_go_together_in_the_next() -> None:
    fake = FakeTemporal()
    emit = emitter(Coalescer(0.0, POLICY), fake)
    first = emit(1)
    await fake.signals(1)
    waiting = [emit(2), emit(3, 4), emit(5)]
    await asyncio.sleep(0.01)
    assert len(fake.sent) == 1 and not first.done(), "a second signal went out before the first landed"
    fake.land(0)
    await asyncio.wait_for(first, DEADLINE_S)
    await fake.signals(2)
    assert fake.sent == [["evt_1"], ["evt_2", "evt_3", "evt_4", "evt_5"]]
    assert not any(t.done() for t in waiting), "an emit returned before its signal landed"
    fake.land(1)
    await asyncio.wait_for(asyncio.gather(*waiting), DEADLINE_S)
    assert fake.most_in_flight == 1
    # Idle again: the next emit starts a new signal of its own.
    last = emit(6)
    await fake.signals(3)
    fake.land(2)
    await asyncio.wait_for(last, DEADLINE_S)
    assert fake.sent[2] == ["evt_6"]


async def test_a_failed_signal_fails_only_its_own_emits() -> None:
    fake = FakeTemporal()
    emit = emitter(Coalescer(0.0, POLICY), fake)
    first = emit(1)
    await fake.signals(1)
    second = emit(2)
    fake.land(0, RuntimeError("Temporal unavailable"))
    with pytest.raises(RuntimeError, match="Temporal unavailable"):
        await asyncio.wait_for(first, DEADLINE_S)
    await fake.signals(2)
    fake.land(1)
    await asyncio.wait_for(second, DEADLINE_S)
    assert fake.sent == [["evt_1"], ["evt_2"]]


async def test_a_large_gathering_is_split_into_signals_of_bounded_size() -> None:
    fake = FakeTemporal()
    emit = emitter(Coalescer(0.0, POLICY), fake)
    many = emit(*range(MAX_EVENTS_PER_SIGNAL + 1))
    await fake.signals(1)
    fake.land(0)
    await fake.signals(2)
    assert not many.done(), "the emit returned before all of its signals landed"
    fake.land(1)
    await asyncio.wait_for(many, DEADLINE_S)
    assert [len(s) for s in fake.sent] == [MAX_EVENTS_PER_SIGNAL, 1]
