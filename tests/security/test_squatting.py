"""Nobody can squat an order (issue 19): an order's workflow id taken by a foreign start makes
the starter fail loudly (Python API, CLI, batch lines), never answer "already started"; a
genuine retry of the same order still does. No worker runs: only the starts are looked at."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from jwcrypto import jwk
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import PayloadCodec
from temporalio.testing import WorkflowEnvironment

from contracts import card_order as api
from contracts import d1_batch as batch_api
from contracts.card_order import OrderTiming
from d1.program import DEFAULT_PROGRAM_FILE
from starter import cli
from starter.api import CardOrders, ForeignStart
from starter.d1_batches import BatchLimits, batch_workflow_id
from starter.edge import KeyFile, OrderEdge
from tests.conftest import new_request_id, temporal_address
from tests.support.orders import sample_order

ISSUER = "TESTISS001"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "d1-enc.jwk"
    path.write_text(jwk.JWK.generate(kty="EC", crv="P-256", kid="d1-enc-squat").export_public())
    return path


@pytest.fixture
def orders(temporal_env: WorkflowEnvironment, key_file: Path) -> CardOrders:
    edge = OrderEdge(program_file=DEFAULT_PROGRAM_FILE, encryption_key=KeyFile(key_file))
    return CardOrders(temporal_env.client, task_queue=f"squat-{uuid.uuid4().hex[:8]}", timing=OrderTiming(), edge=edge)


async def _plain_client(temporal_env: WorkflowEnvironment) -> Client:
    """An attacker's client: Temporal access, no codec, no key."""
    return await Client.connect(temporal_address(temporal_env.client), namespace=temporal_env.client.namespace)


async def _squat(temporal_env: WorkflowEnvironment, workflow_id: str, workflow_type: str = api.WORKFLOW_TYPE) -> None:
    plain = await _plain_client(temporal_env)
    await plain.start_workflow(workflow_type, {"ref": "garbage"}, id=workflow_id, task_queue="squatter")


async def test_the_same_order_submitted_twice_is_the_same_order(orders: CardOrders) -> None:
    order = sample_order(new_request_id("squat-retry"))
    first = await orders.submit(order)
    again = await orders.submit(order)  # a new JWE, the same order
    assert first.created and not again.created and again.workflow_id == first.workflow_id


async def test_an_id_taken_by_a_client_without_the_key_fails_the_submit(
    orders: CardOrders, temporal_env: WorkflowEnvironment
) -> None:
    rid = new_request_id("squat-plain")
    await _squat(temporal_env, api.workflow_id(ISSUER, rid))
    with pytest.raises(ForeignStart, match="cannot be opened") as info:
        await orders.submit(sample_order(rid))
    assert info.value.workflow_id == api.workflow_id(ISSUER, rid) and "nothing was started" in str(info.value)


async def test_an_id_taken_by_a_sealed_start_of_another_body_fails_the_submit(orders: CardOrders) -> None:
    rid = new_request_id("squat-sealed")
    order = sample_order(rid)
    other = sample_order(rid)
    other["shipment"]["deliveryAddress"]["line1"] = "1 Squatter Road"  # the card ships elsewhere
    # Sealed with the service's own codec (a stolen key, a bug): the same ids, another body.
    foreign = orders.edge.prepare(other, timing=orders.timing)
    await orders.client.start_workflow(
        api.WORKFLOW_TYPE, foreign.input, id=foreign.workflow_id, task_queue=orders.task_queue
    )
    with pytest.raises(ForeignStart, match="another D1 body"):
        await orders.submit(order)


async def test_an_id_of_another_workflow_type_or_order_is_foreign(
    orders: CardOrders, temporal_env: WorkflowEnvironment
) -> None:
    rid = new_request_id("squat-type")
    await _squat(temporal_env, api.workflow_id(ISSUER, rid), workflow_type="SomethingElse")
    with pytest.raises(ForeignStart, match="another workflow type"):
        await orders.submit(sample_order(rid))
    rid = new_request_id("squat-ids")
    foreign = orders.edge.prepare(sample_order(rid, consumerId="someone-else"), timing=orders.timing)
    await orders.client.start_workflow(
        api.WORKFLOW_TYPE, foreign.input, id=foreign.workflow_id, task_queue=orders.task_queue
    )
    with pytest.raises(ForeignStart, match="names another order"):
        await orders.submit(sample_order(rid))


async def test_start_many_reports_a_squatted_line_failed(orders: CardOrders, temporal_env: WorkflowEnvironment) -> None:
    rids = [new_request_id("squat-many") for _ in range(3)]
    await _squat(temporal_env, api.workflow_id(ISSUER, rids[1]))
    results = await orders.start_many([sample_order(rid) for rid in rids])
    assert [r.submitted is not None for r in results] == [True, False, True]
    assert results[1].failed and "ForeignStart" in results[1].failed and results[1].refused is None


async def test_a_squatted_d1_batch_fails_its_lines(orders: CardOrders, temporal_env: WorkflowEnvironment) -> None:
    items = [sample_order(new_request_id("squat-batch")) for _ in range(2)]
    prepared = [orders.edge.prepare(o, timing=orders.timing) for o in items]
    batch_id = batch_workflow_id(prepared)
    await _squat(temporal_env, batch_id, workflow_type=batch_api.WORKFLOW_TYPE)
    results = await orders.start_many(prepared, d1_batches=BatchLimits(max_cards=10))
    assert all(r.submitted is None and r.failed and "ForeignStart" in r.failed for r in results), results
    # The same batch again, unsquatted: a retry of its own batch is recognised.
    fresh = [orders.edge.prepare(sample_order(new_request_id("squat-batch-ok")), timing=orders.timing)]
    first = await orders.start_many(fresh, d1_batches=BatchLimits(max_cards=10))
    again = await orders.start_many(
        [orders.edge.prepare(sample_order(fresh[0].ref.issuer_request_id), timing=orders.timing)],
        d1_batches=BatchLimits(max_cards=10),
    )
    assert first[0].d1_batch_created and again[0].submitted is not None and not again[0].d1_batch_created


async def test_the_cli_exits_non_zero_on_a_squatted_id(
    orders: CardOrders,
    temporal_env: WorkflowEnvironment,
    key_file: Path,
    codec_keys_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", temporal_address(temporal_env.client))
    monkeypatch.setenv("TEMPORAL_NAMESPACE", temporal_env.client.namespace)
    monkeypatch.setenv("TEMPORAL_TASK_QUEUE", orders.task_queue)
    monkeypatch.setenv("CODEC_KEYS_FILE", str(codec_keys_file))
    monkeypatch.setenv("D1_ENCRYPTION_PUBLIC_KEY_FILE", str(key_file))
    rid = new_request_id("squat-cli")
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(sample_order(rid)))
    assert await cli.run(["submit", str(order_file)]) == 0
    assert await cli.run(["submit", str(order_file)]) == 0  # a retry: the same order
    out, _ = capsys.readouterr()
    assert "started" in out and "already exists" in out
    squatted = new_request_id("squat-cli")
    await _squat(temporal_env, api.workflow_id(ISSUER, squatted))
    order_file.write_text(json.dumps(sample_order(squatted)))
    assert await cli.run(["submit", str(order_file)]) == cli.EXIT_FOREIGN
    out, err = capsys.readouterr()
    assert "already exists" not in out and "is taken by a run that is not this order" in err


class _NamingCodec(PayloadCodec):
    """The session's codec, naming a sealer on decoding as a role-keyed codec does."""

    def __init__(self, inner: PayloadCodec, sealer: bytes) -> None:
        self._inner, self._sealer = inner, sealer

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self._inner.encode(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        opened = await self._inner.decode(payloads)
        for payload in opened:
            payload.metadata["sealed-by"] = self._sealer
        return opened


@pytest.mark.parametrize(("sealer", "foreign"), [(b"edge", False), (b"receiver", True), (b"operator:mallory", True)])
async def test_a_start_sealed_by_another_role_is_foreign(orders: CardOrders, sealer: bytes, foreign: bool) -> None:
    base = orders.client
    assert base.data_converter.payload_codec is not None
    converter = dataclasses.replace(
        base.data_converter, payload_codec=_NamingCodec(base.data_converter.payload_codec, sealer)
    )
    naming = CardOrders(
        Client(base.service_client, namespace=base.namespace, data_converter=converter),
        task_queue=orders.task_queue,
        timing=orders.timing,
        edge=orders.edge,
    )
    order = sample_order(new_request_id("squat-role"))
    assert (await orders.submit(order)).created
    if foreign:
        with pytest.raises(ForeignStart, match="not sealed by the issuer edge"):
            await naming.submit(order)
    else:
        assert not (await naming.submit(order)).created
