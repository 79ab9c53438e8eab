"""``start_many``, the one way to start many orders, without a server: bounded concurrency,
one result per order through one callback, refusals and failures per order, and D1
batches grouped by the limits, each started once its cards' workflows have started."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from jwcrypto import jwk

from contracts.card_order import OrderTiming
from d1.program import DEFAULT_PROGRAM_FILE
from starter.api import OrderRefused, SubmittedOrder
from starter.d1_batches import BatchLimits
from starter.edge import KeyFile, OrderEdge, PreparedOrder
from starter.start_many import D1Batcher, Started, start_many
from tests.support.orders import sample_order


class FakeOrders:
    """What start_many needs of ``CardOrders``: the edge, submit_prepared and the client's start."""

    def __init__(self, edge: OrderEdge, *, refuse: tuple[str, ...] = (), fail: tuple[str, ...] = ()) -> None:
        self.edge, self.timing, self.task_queue, self.client = edge, OrderTiming(), "q", self
        self.refuse, self.fail = refuse, fail
        self.running = self.peak = 0
        self.members: list[str] = []
        self.batches: list[tuple[str, list[str]]] = []

    async def submit(self, order: Any) -> SubmittedOrder:
        return await self.submit_prepared(self.edge.prepare(order, timing=self.timing))

    async def submit_prepared(self, prepared: PreparedOrder) -> SubmittedOrder:
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(0.005)
        self.running -= 1
        rid = prepared.ref.issuer_request_id
        if rid in self.refuse:
            raise OrderRefused(f"card of {rid} already has an open order")
        if rid in self.fail:
            raise RuntimeError("Temporal unavailable")
        if prepared.input.batch is not None:
            self.members.append(rid)
        return SubmittedOrder(prepared.workflow_id, created=not rid.endswith("-old"))

    async def start_workflow(self, workflow_type: str, arg: Any, *, id: str, **_: Any) -> None:
        self.batches.append((id, [card.issuer_request_id for card in arg.cards]))


def _edge(tmp_path: Path) -> OrderEdge:
    key_file = tmp_path / "d1.jwk"
    key_file.write_text(jwk.JWK.generate(kty="EC", crv="P-256", kid="d1-enc-test").export_public())
    return OrderEdge(program_file=DEFAULT_PROGRAM_FILE, encryption_key=KeyFile(key_file))


def _orders(rids: list[str]) -> list[dict[str, Any]]:
    return [sample_order(rid, card_id=f"card-{rid}") for rid in rids]


async def test_each_order_alone_at_most_concurrency_at_a_time_with_one_result_each(tmp_path: Path) -> None:
    rids = [f"req-m-{i:02d}" for i in range(40)] + ["req-m-old", "req-m-busy", "req-m-down"]
    fake = FakeOrders(_edge(tmp_path), refuse=("req-m-busy",), fail=("req-m-down",))
    heard: list[Started] = []
    orders: Any = fake
    results = await start_many(orders, _orders(rids), concurrency=5, on_result=heard.append)
    assert fake.peak == 5
    assert [r.index for r in results] == list(range(len(rids))) and len(heard) == len(rids)
    assert sum(r.submitted is not None and r.submitted.created for r in results) == 40
    assert results[40].submitted is not None and not results[40].submitted.created  # started earlier
    assert results[41].refused == "card of req-m-busy already has an open order"
    assert results[42].failed == "RuntimeError: Temporal unavailable"
    assert not fake.batches and not fake.members


async def test_d1_batches_follow_the_limits_and_leave_out_the_cards_not_started(tmp_path: Path) -> None:
    rids = [f"req-b-{i}" for i in range(7)]
    fake = FakeOrders(_edge(tmp_path), refuse=("req-b-1",))
    orders: Any = fake
    results = await start_many(orders, [*_orders(rids), {"not": "an order"}], d1_batches=BatchLimits(max_cards=3))
    assert [cards for _, cards in fake.batches] == [["req-b-0", "req-b-2"], rids[3:6], rids[6:]]
    assert sorted(fake.members) == sorted(set(rids) - {"req-b-1"})
    assert results[1].refused and results[1].d1_batch == fake.batches[0][0]
    assert results[7].failed is not None and results[7].failed.startswith("InvalidOrder")
    assert {r.d1_batch for r in results[:7]} == {b for b, _ in fake.batches}
    assert all(r.d1_batch_created for r in results[:7])


async def test_a_d1_batch_never_mixes_issuers(tmp_path: Path) -> None:
    fake = FakeOrders(_edge(tmp_path))
    orders: Any = fake
    mixed = _orders(["req-i-0", "req-i-1", "req-i-2", "req-i-3"])
    mixed[1]["issuerId"] = mixed[2]["issuerId"] = "OTHERISS01"
    results = await start_many(orders, mixed, d1_batches=BatchLimits(max_cards=10))
    assert [cards for _, cards in fake.batches] == [["req-i-0"], ["req-i-1", "req-i-2"], ["req-i-3"]]
    assert [b.split(":")[1] for b, _ in fake.batches] == ["TESTISS001", "OTHERISS01", "TESTISS001"]
    assert all(r.submitted is not None for r in results)


async def test_the_batcher_sends_a_full_batch_at_once_and_the_rest_after_max_wait(tmp_path: Path) -> None:
    fake = FakeOrders(_edge(tmp_path))
    orders: Any = fake
    limits = BatchLimits(max_cards=2, max_wait=BatchLimits().max_wait / 20)
    async with D1Batcher(orders, limits) as batcher:
        submitted = await asyncio.gather(*(batcher.submit(order) for order in _orders(["r-1", "r-2", "r-3"])))
    assert [s.created for s in submitted] == [True, True, True]
    assert [cards for _, cards in fake.batches] == [["r-1", "r-2"], ["r-3"]]
