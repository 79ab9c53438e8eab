"""Hostile input never crashes anything: the receiver answers only its documented codes,
the starter only ever says "valid" or lists field errors, and workflows survive odd but
well-formed updates."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from d1.paths import notification_path
from settings import ReceiverSettings
from stack.processes import Supervisor
from stack.servers import free_port, wait_http
from tests.conftest import ISSUER_ID, Stack, new_request_id
from tests.support.notifications import operation
from tests.support.orders import BASE_ORDER, sample_order
from tests.support.validation import InvalidOrder, validate_order

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
DOCUMENTED = {204, 400, 413, 503}
# Oversized bodies (5 times the receiver's limit) sent after a first one: a receiver that kept
# them would grow by 40 MB; reading and refusing one costs uvicorn a few MB at most.
OVERSIZED_MB = 5
OVERSIZED_REPEATS = 8


def _mutations() -> st.SearchStrategy[dict[str, Any]]:
    """Valid orders with one field replaced by anything at all."""
    keys = st.sampled_from(sorted(BASE_ORDER))
    return st.builds(lambda k, v: {**BASE_ORDER, k: v}, keys, json_values)


def _notification_mutations() -> st.SearchStrategy[dict[str, Any]]:
    """A valid notification (for a card nobody ordered: an orphan, 204) with one field of its
    operation, or of the operation's details, replaced by anything at all."""
    base = operation("CARD_PROD_READY", card_id="card-fuzz", request_id=None)
    top = st.builds(lambda k, v: {**base, k: v}, st.sampled_from(sorted(base)), json_values)
    details = st.builds(
        lambda k, v: {**base, "details": {**base["details"], k: v}},
        st.sampled_from(["status", "reason", "dueDate", "shipment"]),
        json_values,
    )
    return st.builds(lambda op: {"operations": [op]}, st.one_of(st.just(base), top, details))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, _mutations()))
def test_starter_validation_only_answers_valid_or_field_errors(raw: Any) -> None:
    try:
        validate_order(raw)
    except InvalidOrder as err:
        assert err.errors and all(e.path.startswith("$") and e.reason for e in err.errors)
        assert "4111111111111111" not in str(err)


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM): a body buffered even for a moment shows."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


@pytest.mark.timeout(300)
async def test_receiver_survives_arbitrary_bodies(stack: Stack, tmp_path: Path) -> None:
    bodies: list[bytes] = [
        b"",
        b"\xff\xfe\xfa invalid utf-8",
        b"[" * 100_000 + b"]" * 100_000,  # deep nesting
        b'{"operations": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b"x" * (2 * 1024 * 1024),  # over the size limit
        json.dumps({"operations": []}).encode(),
        json.dumps({"operations": [{"operationId": 1, "operation": [], "status": {}, "startTime": 3}]}).encode(),
        json.dumps({"operations": "not a list"}).encode(),
        json.dumps([1, 2, 3]).encode(),
    ]
    strategy = st.one_of(
        json_values, st.fixed_dictionaries({"operations": st.lists(json_values, max_size=3)}), _notification_mutations()
    )
    examples = [json.dumps(strategy.example()).encode() for _ in range(150)]
    # The receiver as its own process (beside the stack's in-process one): its memory and its
    # output are its own, and uvicorn logs an unhandled exception there, on loggers of its own.
    port = free_port()
    local = stack.local.override(ReceiverSettings, port=port)
    url = f"http://127.0.0.1:{port}"  # local.receiver_url is the stack's own receiver
    sup = Supervisor(tmp_path)
    proc = sup.start("receiver", local.argv("receiver"), local.env("receiver"))
    try:
        await wait_http(f"{url}/healthz", "receiver", within_s=30, alive=sup.check_alive)
        receiver = psutil.Process(proc.pid)
        fuzzed: Counter[int] = Counter()
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for i, body in enumerate(bodies + examples):
                resp = await http.post(notification_path(ISSUER_ID), content=body)
                assert resp.status_code in DOCUMENTED, (resp.status_code, body[:100])
                assert resp.status_code != 503
                if i >= len(bodies):
                    fuzzed[resp.status_code] += 1
            # The same oversized body, repeatedly: refused each time, and memory does not grow with
            # it. Measured from the first refusal on (the allocator keeps what reading one took).
            oversized = b"{" * (OVERSIZED_MB * 2**20)
            rss_mb: list[float] = []
            for _ in range(1 + OVERSIZED_REPEATS):
                resp = await http.post(notification_path(ISSUER_ID), content=oversized)
                assert resp.status_code == 413
                rss_mb.append(receiver.memory_info().rss / 2**20)
                if len(rss_mb) == 1:
                    peak_after_first_mb = _peak_rss_mb(proc.pid)
            grown_mb = rss_mb[-1] - rss_mb[0]
            peak_mb = _peak_rss_mb(proc.pid) - peak_after_first_mb
        # The fuzzing reached both sides: bodies taken (204) and bodies refused (400).
        assert fuzzed[204] and fuzzed[400], fuzzed
        sup.check_alive()
    finally:
        sup.stop_all(timeout=20)
    output = (tmp_path / "receiver.log").read_text()
    assert f"Uvicorn running on {url}" in output, output[-2000:]  # the process tested, uvicorn's lines in its log
    sent_mb = OVERSIZED_MB * OVERSIZED_REPEATS
    assert grown_mb < sent_mb / 2 and peak_mb < sent_mb / 2, (
        f"the receiver process grew by {grown_mb:.0f} MB (peak +{peak_mb:.0f} MB) over {sent_mb} MB of refused bodies"
    )
    unhandled = [
        line
        for line in output.splitlines()
        if "Traceback" in line or "Exception in ASGI application" in line or " ERROR " in line
    ]
    assert unhandled == [], output[-4000:]


async def test_odd_but_well_formed_updates_do_not_crash_the_workflow(stack: Stack) -> None:
    rid = new_request_id("odd")
    await stack.emulator("POST", "/_emulator/faults", json={"captureNotifications": True})
    try:
        await stack.orders.submit(sample_order(rid))
        await stack.orders.wait_for(ISSUER_ID, rid, lambda v: v.state.operation_id is not None)
        view = await stack.orders.status(ISSUER_ID, rid)
        card = view.ref.card_id
        weird = st.fixed_dictionaries(
            {
                "operationId": st.text(min_size=1, max_size=64),
                "operation": st.sampled_from(["PRODUCE", "UPDATE_ORDER", "STANDALONE_TRACKING", "WHATEVER"]),
                "status": st.text(min_size=1, max_size=30),
                "startTime": st.text(min_size=1, max_size=40),
                "cardId": st.just(card),
                "issuerRequestId": st.just(rid),
                "details": st.fixed_dictionaries(
                    {"status": st.text(max_size=40), "dueDate": st.text(max_size=30)},
                    optional={
                        "shipment": st.dictionaries(
                            st.sampled_from(["status", "carrier", "message"]), st.text(max_size=200)
                        )
                    },
                ),
            }
        )
        async with httpx.AsyncClient(base_url=stack.receiver_url, timeout=30) as http:
            codes: Counter[int] = Counter()
            for _ in range(60):
                op = weird.example()
                resp = await http.post(notification_path(ISSUER_ID), json={"operations": [op]})
                assert resp.status_code in (204, 400)
                codes[resp.status_code] += 1
            # Both sides exercised: odd updates the receiver took and signalled, and ones it refused.
            assert codes[204] and codes[400], codes
        after = await stack.orders.status(ISSUER_ID, rid)  # still answering queries
        assert after.workflow_id == view.workflow_id
        desc = await stack.client.get_workflow_handle(view.workflow_id).describe()
        assert desc.status is not None and desc.status.name in ("RUNNING", "COMPLETED")
        history = await stack.client.get_workflow_handle(view.workflow_id).fetch_history()
        failed_tasks = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
        assert failed_tasks == []
    finally:
        await stack.emulator("POST", "/_emulator/faults", json={"captureNotifications": False})
