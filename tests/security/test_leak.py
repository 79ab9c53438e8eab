"""Clear card data exists in one place only: the starter's call that encrypts it for D1.

50 orders with a distinctive PAN, expiry, CVV1, CVV2, PVV, cardholder name and track data
go through the whole mutual-TLS stack (starter → Temporal → worker → emulator with the
issuer's certificate, emulator → receiver with the tenant's certificate and an
outbound-OAuth token). Then the test searches for those values — also with separators
removed, and inside every base64 string — in:

* every log record of the test process (worker, receiver, emulator and starter all run
  in it; raw records: the redaction layer is *not* installed here, so this proves the
  components never log card data at all), rendered as text and as JSON, plus everything
  written to stdout/stderr (Temporal's Rust core logs there);
* the raw history of every workflow as the server stores it (``temporal workflow show
  --output json`` with the installed CLI, without the codec);
* the same history *decrypted with the payload codec's own key*: whoever holds that key
  (every worker, receiver, starter and the codec server) still finds no card data, only
  D1's JWE;
* every span, raw and unredacted, in an in-memory exporter: OpenTelemetry's
  TracingInterceptor spans and the product's own (the starter's ``card_order.submit``, the
  D1 HTTP client's, the receiver's server and route spans);
* every exception message (invalid submissions, asyncio's unhandled-exception handler,
  records carrying exceptions) and the workflow results;
* every query result and operator-facing JSON (order views, order lists, the emulator's
  order snapshots and captured notifications, the receiver's stats).

A second test runs the emulator, the receiver, the worker and the starter CLI as real
processes (``python -m …``, with the redaction layer they install) and searches their
output, and every span the worker, the receiver and the CLI made, taken raw (before
redaction) through the test-only span file of observability/tracing.py.

Card data is searched as it is and with separators removed; CVV, PVV and expiry also where
they stand alone, not only after a field name; and inside every base64 token, in JSON and
in plain text (tests/security/support.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from temporalio.client import Client

from contracts.card_order import OrderView, Outcome
from observability import tracing
from security.codec import load_codec
from stack.processes import Supervisor
from stack.servers import wait_http
from stack.spec import Ports
from starter.api import CardOrders
from tests.conftest import temporal_cli
from tests.security.conftest import RECEIVER_OPERATOR_TOKEN, MtlsStack
from tests.security.support import ISSUER_ID, LEAK_PAN, decrypted_history, find_leaks, leak_card_data, leak_track_data
from tests.support.orders import sample_order
from tests.support.validation import InvalidOrder, validate_order

REPO_ROOT = Path(__file__).resolve().parents[2]
ORDERS = 50
# The product's own spans, beside the SDK's: starter, D1 HTTP client, receiver server and route.
STARTER_SPAN = "card_order.submit"
D1_ORDER_SPAN = "D1 POST order"
RECEIVER_SPANS = {"POST /notifications/d1/v2/issuers/{issuerId}/cards", "route D1 notification"}
PRODUCT_SPANS = {STARTER_SPAN, D1_ORDER_SPAN, *RECEIVER_SPANS}
REJECTED_BY_D1 = 2  # D1 (the emulator, fault injection) answers 400 → REJECTED
DATA_EXCEPTIONS = 2  # D1 accepts, then reports DATA_EXCEPTION


class _Capture(logging.Handler):
    """Every record, as text: message, exception, stack and ``extra=`` attributes."""

    _standard = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.json_lines: list[str] = []
        self.exceptions: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the raw parts
            message = f"{record.msg!r} {record.args!r}"
        extras = {k: v for k, v in record.__dict__.items() if k not in self._standard}
        line = f"{record.name} {record.levelname} {message} {extras!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            self.exceptions.append(text)
            line += "\n" + text
        if record.stack_info:
            line += "\n" + record.stack_info
        self.lines.append(line)
        # The same record as a JSON log collector would take it: every attribute, unredacted.
        self.json_lines.append(json.dumps({**record.__dict__, "message": message}, default=repr))


@pytest.fixture
def product_spans(mtls_stack: MtlsStack) -> Iterator[None]:
    """The product's own spans (D1 client, receiver, starter) into the stack's in-memory
    exporter, raw, for this test only (the provider is the process's, other tests set theirs)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(mtls_stack.spans))
    previous = tracing._provider
    tracing.use_tracer_provider(provider)
    try:
        yield
    finally:
        tracing.use_tracer_provider(previous)


@pytest.fixture
def captured_logs() -> Iterator[_Capture]:
    """Attach to the root logger and to every logger that does not propagate, at DEBUG."""
    capture = _Capture()
    loggers = [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger) and not lg.propagate
    ]
    all_loggers = [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    levels = {lg: lg.level for lg in all_loggers}
    for lg in loggers:
        lg.addHandler(capture)
    for lg in all_loggers:
        lg.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        for lg in loggers:
            lg.removeHandler(capture)
        for lg, level in levels.items():
            lg.setLevel(level)


async def _raw_history(stack: MtlsStack, workflow_ids: list[str]) -> dict[str, str]:
    """``temporal workflow show --output json`` per workflow, without any codec settings (the
    stack's environment for a child process carries no TEMPORAL_* variable of this one)."""
    temporal_address, env = stack.temporal_address, stack.local.base_env()
    gate = asyncio.Semaphore(4)

    async def show(wid: str) -> tuple[str, str]:
        async with gate:
            proc = await asyncio.create_subprocess_exec(
                temporal_cli(),
                "workflow",
                "show",
                "-w",
                wid,
                "--address",
                temporal_address,
                "--namespace",
                "default",
                "--output",
                "json",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        return wid, out.decode()

    return dict(await asyncio.gather(*(show(w) for w in workflow_ids)))


def _leak_order(rid: str, **card: Any) -> dict[str, Any]:
    return sample_order(rid, cardData=leak_card_data(**card), trackData=leak_track_data())


def _pan_id_orders(stamp: int) -> dict[str, dict[str, Any]]:
    """Orders whose cardId, issuerRequestId or consumerId is the card's own PAN."""
    return {
        "cardId": sample_order(f"leak-pan-{stamp}-card", LEAK_PAN, cardData=leak_card_data()),
        "issuerRequestId": sample_order(LEAK_PAN, f"card-leak-pan-{stamp}", cardData=leak_card_data()),
        "consumerId": sample_order(f"leak-pan-{stamp}-consumer", consumerId=LEAK_PAN, cardData=leak_card_data()),
    }


async def _operator_views(stack_orders: CardOrders, client: Client, rids: list[str]) -> list[str]:
    texts = []
    for rid in rids:
        view = await stack_orders.status(ISSUER_ID, rid)
        texts.append(view.model_dump_json())
        texts.append(repr(view))
    texts.append(repr(await stack_orders.list('IssuerRequestId STARTS_WITH "leak-"', limit=200)))
    return texts


# Numeric metadata (sizes, ids) where three or four digits stand alone by chance: searched
# for card data in its keyed form; the payloads in it are searched decrypted, bare values too.
NUMERIC_METADATA = "raw Temporal history"


def _search(sources: dict[str, list[str]], *, include_name: bool = True) -> list[str]:
    hits: list[str] = []
    for where, texts in sources.items():
        hits += find_leaks(where, texts, include_name=include_name, bare=where != NUMERIC_METADATA)
    return hits


async def test_no_card_data_leaks_anywhere_through_the_mtls_stack(
    mtls_stack: MtlsStack, product_spans: None, captured_logs: _Capture, capfd: pytest.CaptureFixture[str]
) -> None:
    loop = asyncio.get_running_loop()
    loop_exceptions: list[str] = []
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: loop_exceptions.append(repr(context)))
    stamp = int(time.time())
    try:
        exceptions: list[str] = []
        # Invalid at the starter: nothing starts, and the message names fields only.
        for bad in (
            _leak_order(f"leak-bad-{stamp}-cvv", cvv2=f"{LEAK_PAN[:5]}"),
            _leak_order(f"leak-bad-{stamp}-luhn", pan=LEAK_PAN[:-1] + str((int(LEAK_PAN[-1]) + 1) % 10)),
            _leak_order(f"leak-bad-{stamp}-spaced", pan=" ".join(LEAK_PAN[i : i + 4] for i in range(0, 16, 4))),
        ):
            with pytest.raises(InvalidOrder) as info:
                validate_order(bad)
            exceptions += [str(info.value), repr(info.value), repr(info.value.errors)]
        # A card number as an identifier is refused at the edge, by path (issue 19).
        for member, pan_id in _pan_id_orders(stamp).items():
            with pytest.raises(InvalidOrder) as info:
                await mtls_stack.orders.submit(pan_id)
            assert f"$.{member}" in [e.path for e in info.value.errors]
            exceptions += [str(info.value), repr(info.value), repr(info.value.errors)]

        faults = {
            "dataExceptions": DATA_EXCEPTIONS,
            "orderFailures": [
                {
                    "status": 400,
                    "count": REJECTED_BY_D1,
                    "errorCode": "FIELD_INVALID_FORMAT",
                    "error": "encryptedData.exp: month must be 01-12 (YYMM)",
                }
            ],
        }
        response = await mtls_stack.emulator_admin("POST", "/_emulator/faults", json=faults)
        assert response.status_code == 200, response.text
        rids = [f"leak-{stamp}-{i:03d}" for i in range(ORDERS)]
        orders = [_leak_order(rid) for rid in rids]
        submitted = await asyncio.gather(*(mtls_stack.orders.submit(o) for o in orders))
        assert all(s.created for s in submitted)
        results: list[OrderView] = await asyncio.wait_for(
            asyncio.gather(*(mtls_stack.orders.wait(ISSUER_ID, rid) for rid in rids)), timeout=240
        )
        outcomes = [r.state.outcome for r in results]
        assert outcomes.count(Outcome.REJECTED) == REJECTED_BY_D1, outcomes
        assert outcomes.count(Outcome.DATA_EXCEPTION) == DATA_EXCEPTIONS, outcomes
        assert outcomes.count(Outcome.DELIVERED) == ORDERS - REJECTED_BY_D1 - DATA_EXCEPTIONS, outcomes
        assert all(r.ref.masked_pan == LEAK_PAN[:4] + "********" + LEAK_PAN[-4:] for r in results)
        rejected = [r for r in results if r.state.outcome == Outcome.REJECTED]
        assert all(e.error_code for r in rejected for e in r.state.errors)

        queries = await _operator_views(mtls_stack.orders, mtls_stack.client, rids)
        queries += [r.model_dump_json() for r in results]
        for path in ("/_emulator/orders", "/_emulator/captured", "/_emulator/stats"):
            queries.append((await mtls_stack.emulator_admin("GET", path)).text)
        async with mtls_stack.http(mtls_stack.pki.notifier_client(ISSUER_ID)) as http:
            stats = await http.get(
                f"{mtls_stack.receiver_url}/_receiver/stats",
                headers={"authorization": f"Bearer {RECEIVER_OPERATOR_TOKEN}"},
            )
            assert stats.status_code == 200, stats.text
            queries.append(stats.text)

        history = await _raw_history(mtls_stack, [s.workflow_id for s in submitted])
        assert len(history) == ORDERS and all('"eventType"' in h for h in history.values())
        codec = load_codec(mtls_stack.codec_keys_file)
        decrypted: list[str] = []
        for s in submitted:
            decrypted += await decrypted_history(mtls_stack.client, s.workflow_id, codec)
        # What the key holder does see: the D1 body with its JWE, and the masked PAN.
        joined = "\n".join(decrypted)
        assert '"encryptedData":"eyJ' in joined and f"{LEAK_PAN[:4]}********{LEAK_PAN[-4:]}" in joined

        spans = mtls_stack.spans.get_finished_spans()
        names = {s.name for s in spans}
        assert "StartWorkflow:CardOrderWorkflow" in names and "RunActivity:submit_order" in names, names
        assert PRODUCT_SPANS <= names, f"product spans missing: {PRODUCT_SPANS - names}"
    finally:
        loop.set_exception_handler(previous_handler)
    out, err = capfd.readouterr()
    sys.stdout.write(out)
    sys.stderr.write(err)

    assert len(captured_logs.lines) > ORDERS * 5, "the log capture saw (almost) nothing: it is not attached"
    seen = {line.split(" ", 1)[0] for line in captured_logs.lines}
    # Per-order records of every in-process component (the receiver's are its access lines).
    for component in ("emulator.d1_api", "emulator.notifier", "temporalio.activity", "uvicorn.access", "httpx"):
        assert component in seen, f"no log record from {component}: the capture misses a component ({seen})"
    hits = _search(
        {
            "log record": captured_logs.lines,
            "stdout/stderr": [out, err],
            NUMERIC_METADATA: list(history.values()),
            "history decrypted with the codec key": decrypted,
            "JSON log record": captured_logs.json_lines,
            "exported span": [s.to_json() for s in spans],
            "exception": exceptions + loop_exceptions + captured_logs.exceptions,
            "query result / operator JSON": queries,
        }
    )
    assert hits == [], "card data leaked:\n" + "\n".join(hits[:30])


# ---------------------------------------------------------------- real processes


def _with_span_file(env: dict[str, str], path: Path) -> dict[str, str]:
    return {**env, tracing.TEST_SPAN_FILE_VARIABLE: str(path)}


def _span_names(path: Path) -> set[str]:
    return {json.loads(line)["name"] for line in path.read_text().splitlines() if line.strip()}


async def test_no_card_data_in_the_output_of_component_processes(mtls_stack: MtlsStack, tmp_path: Path) -> None:
    # The session's mTLS stack again, as processes: its own state, ports and task queue; the
    # session's codec keys (the test decrypts the histories with them).
    local = mtls_stack.local.spec.replace(
        state_dir=tmp_path,
        ports=Ports.free(),
        task_queue="security-proc-orders",
        receiver_operators=False,
        emulator=replace(mtls_stack.local.spec.emulator, log_level="debug"),
    ).ensure()
    sup = Supervisor(tmp_path / "logs")
    logs = sup.log_dir
    spans = {kind: tmp_path / f"{kind}.spans.jsonl" for kind in ("worker", "receiver", "starter")}
    sup.start("emulator", local.argv("emulator"), local.env("emulator"))
    sup.start("receiver", local.argv("receiver"), _with_span_file(local.env("receiver"), spans["receiver"]))
    sup.start("worker", local.argv("worker"), _with_span_file(local.env("worker"), spans["worker"]))
    starter_env = _with_span_file(local.env("starter"), spans["starter"])
    stamp = int(time.time())
    try:
        await wait_http(
            f"{local.emulator_url}/_emulator/health",
            "emulator",
            verify=local.verify(),
            within_s=30,
            alive=sup.check_alive,
        )
        await wait_http(
            f"{local.receiver_url}/healthz", "receiver", verify=local.verify(), within_s=30, alive=sup.check_alive
        )
        orders = CardOrders(
            mtls_stack.client, task_queue=local.spec.task_queue, timing=local.order_timing(), edge=local.order_edge()
        )
        rids = [f"leak-proc-{stamp}-{i}" for i in range(4)]
        await asyncio.gather(*(orders.submit(_leak_order(rid)) for rid in rids))
        # The starter CLI as a process, too (submit --wait, then status).
        order_file = tmp_path / "order.json"
        cli_rid = f"leak-proc-{stamp}-cli"
        order_file.write_text(json.dumps(_leak_order(cli_rid)))
        cli = await asyncio.create_subprocess_exec(
            *local.argv("starter"),
            "submit",
            str(order_file),
            "--wait",
            cwd=REPO_ROOT,
            env=starter_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        cli_out, _ = await asyncio.wait_for(cli.communicate(), timeout=120)
        status = await asyncio.create_subprocess_exec(
            *local.argv("starter"),
            "status",
            cli_rid,
            cwd=REPO_ROOT,
            env=starter_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        status_out, _ = await asyncio.wait_for(status.communicate(), timeout=60)
        assert cli.returncode == 0, cli_out.decode()
        # Card numbers as ids: the CLI refuses each (exit 2), naming the member, never the value.
        refused_out: list[str] = []
        for member, pan_id in _pan_id_orders(stamp).items():
            pan_file = tmp_path / f"pan-{member}.json"
            pan_file.write_text(json.dumps(pan_id))
            refused = await asyncio.create_subprocess_exec(
                *local.argv("starter"),
                "submit",
                str(pan_file),
                cwd=REPO_ROOT,
                env=starter_env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(refused.communicate(), timeout=60)
            assert refused.returncode == 2 and f"$.{member}" in out.decode(), out.decode()
            refused_out.append(out.decode())
        views = await asyncio.wait_for(asyncio.gather(*(orders.wait(ISSUER_ID, rid) for rid in rids)), timeout=120)
        assert all(v.state.outcome == Outcome.DELIVERED for v in views)
        assert "DELIVERED" in cli_out.decode() + status_out.decode()
        sup.check_alive()
    except RuntimeError as err:  # a process died or did not come up
        pytest.fail(f"{err}\n" + "\n".join(f.read_text() for f in logs.glob("*.log")))
    finally:
        sup.stop_all(timeout=20)
    emulator_log = (logs / "emulator.log").read_text()
    receiver_log = (logs / "receiver.log").read_text()
    worker_log = (logs / "worker.log").read_text()
    assert "notification delivered" in emulator_log and "outbound OAuth token obtained" in emulator_log
    assert "access token issued" in receiver_log
    assert "worker polling task queue(s) security-proc-orders" in worker_log, worker_log[-2000:]
    # Each process wrote its raw spans: the leak search below reads what the product made.
    assert {D1_ORDER_SPAN, "RunActivity:submit_order"} <= _span_names(spans["worker"])
    assert _span_names(spans["receiver"]) >= RECEIVER_SPANS
    assert STARTER_SPAN in _span_names(spans["starter"])
    history = await _raw_history(mtls_stack, [v.workflow_id for v in views])
    codec = load_codec(mtls_stack.codec_keys_file)
    decrypted: list[str] = []
    for v in views:
        decrypted += await decrypted_history(mtls_stack.client, v.workflow_id, codec)
    hits = _search(
        {
            "emulator process": [emulator_log],
            "receiver process": [receiver_log],
            "worker process": [worker_log],
            "starter CLI process": [cli_out.decode(), status_out.decode(), *refused_out],
            "span of a process": [line for path in spans.values() for line in path.read_text().splitlines()],
            NUMERIC_METADATA: list(history.values()),
            "history decrypted with the codec key": decrypted,
        }
    )
    assert hits == [], "card data leaked:\n" + "\n".join(hits[:30])
