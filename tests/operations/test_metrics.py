"""The Prometheus endpoint serves the Temporal SDK's metrics and the product's counters,
with exactly the values this test produced."""

from __future__ import annotations

import re

import pytest

from contracts.card_order import Outcome
from observability import names
from starter.api import CardOrders
from tests.conftest import ISSUER_ID, new_request_id
from tests.operations.conftest import TASK_QUEUE, OpsStack, eventually, slow_timing
from tests.support.notifications import operation
from tests.support.orders import sample_order

pytestmark = pytest.mark.asyncio(loop_scope="session")

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text exposition format → (name, labels, value) samples."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = {lm["key"]: lm["value"] for lm in _LABEL.finditer(m["labels"] or "")}
        out.append((m["name"], labels, float(m["value"])))
    return out


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, ls, v in samples if n == name and all(ls.get(k) == want for k, want in labels.items()))


async def test_metrics_endpoint_serves_product_counters_with_the_values_produced(
    ops: OpsStack, calm_emulator: OpsStack
) -> None:
    before = parse(await ops.metrics_text())
    received_before = ops.router.stats.received

    # A delivered order, a rejected one, and one left waiting (its notifications withheld).
    delivered, rejected, waiting = new_request_id("m-ok"), new_request_id("m-rej"), new_request_id("m-wait")
    await ops.orders.submit(sample_order(delivered, card_id=f"card-{delivered}"))
    assert (await ops.orders.wait(ISSUER_ID, delivered)).state.outcome == Outcome.DELIVERED
    await ops.faults(orderFailures=[{"status": 400, "count": 1, "errorCode": "FIELD_INVALID_FORMAT"}])
    await ops.orders.submit(sample_order(rejected, card_id=f"card-{rejected}"))
    assert (await ops.orders.wait(ISSUER_ID, rejected)).state.outcome == Outcome.REJECTED
    await ops.faults(captureNotifications=True)
    slow = CardOrders(ops.client, task_queue=TASK_QUEUE, timing=slow_timing(), edge=ops.orders.edge)
    await slow.submit(sample_order(waiting, card_id=f"card-{waiting}"))
    view = await slow.wait_for(ISSUER_ID, waiting, lambda v: v.state.operation_id is not None)

    # D1 sends one notification twice, one about the finished order, one about nothing we know.
    step = operation(
        "CARD_PROD_REQUESTED", card_id=f"card-{waiting}", request_id=waiting, operation_id=view.state.operation_id
    )
    assert (await ops.notify(step)).status_code == 204
    assert (await ops.notify(step)).status_code == 204
    late = operation(
        "CARD_SHIPPED",
        card_id=f"card-{delivered}",
        request_id=delivered,
        operation_id="op-late",
        shipment_status="Delivered",
    )
    late["details"]["shipment"]["trackingNumber"] = "LATE-SCAN"
    assert (await ops.notify(late)).status_code == 204
    unknown = operation("CARD_PROD_READY", card_id="card-never-ordered", request_id=new_request_id("m-unknown"))
    assert (await ops.notify(unknown)).status_code == 204
    await slow.wait_for(ISSUER_ID, waiting, lambda v: v.state.duplicates_ignored >= 1)

    async def scrape_when_settled() -> list[tuple[str, dict[str, str], float]] | None:
        after = parse(await ops.metrics_text())
        done = total(after, "d1_notifications_duplicated_total") - total(before, "d1_notifications_duplicated_total")
        return after if done >= 1 else None

    after = await eventually(scrape_when_settled)
    assert after is not None

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta(f"{names.ORDERS_STARTED}_total", issuer_id=ISSUER_ID) == 3
    assert delta(f"{names.ORDERS_FINISHED}_total", outcome="DELIVERED") == 1
    assert delta(f"{names.ORDERS_FINISHED}_total", outcome="REJECTED") == 1
    assert delta(f"{names.ORDERS_FINISHED}_total", outcome="CANCELED") == 0
    assert delta(f"{names.NOTIFICATIONS_DUPLICATED}_total") == 1
    assert delta(f"{names.NOTIFICATIONS_LATE}_total", seen_by="receiver") == 1
    assert delta(f"{names.NOTIFICATIONS_UNKNOWN}_total") == 1
    received = ops.router.stats.received - received_before
    assert received >= 4 + 9  # ours, and the delivered order's production and shipment steps
    assert delta(f"{names.NOTIFICATIONS_RECEIVED}_total") == received
    # D1 calls by endpoint and status code, with their latency histogram.
    assert delta(f"{names.D1_REQUESTS}_total", endpoint="order", status_code="202") == 2
    assert delta(f"{names.D1_REQUESTS}_total", endpoint="order", status_code="400") == 1
    assert delta(f"{names.D1_REQUEST_DURATION}_count", endpoint="order") == 3
    assert delta(f"{names.D1_REQUEST_DURATION}_bucket", endpoint="order", le="+Inf") == 3
    # And the SDK's own metrics on the same endpoint.
    assert total(after, "temporal_workflow_completed_total") >= 2
    assert total(after, "temporal_activity_execution_latency_count", activity_type="submit_order") >= 3
