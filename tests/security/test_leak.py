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
* every span exported by OpenTelemetry's TracingInterceptor (raw, unredacted exporter);
* every exception message (invalid submissions, asyncio's unhandled-exception handler,
  records carrying exceptions) and the workflow results;
* every query result and operator-facing JSON (order views, order lists, the emulator's
  order snapshots and captured notifications, the receiver's stats).

A second test runs the emulator, the receiver and the starter CLI as real processes
(``python -m …``, with the redaction layer they install) and searches their output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from contracts.card_order import OrderView, Outcome
from security.codec import load_codec
from security.pki import LocalPki
from settings import D1ClientSettings
from starter.api import CardOrders
from starter.edge import OrderEdge
from tests.conftest import fast_timing, temporal_cli
from tests.security.conftest import OAUTH_CLIENT_ID, RECEIVER_OPERATOR_TOKEN, MtlsStack
from tests.security.support import (
    ISSUER_ID,
    LEAK_PAN,
    decrypted_history,
    find_leaks,
    leak_card_data,
    leak_track_data,
)
from tests.support.orders import sample_order
from tests.support.servers import free_port
from tests.support.validation import InvalidOrder, validate_order
from worker import build_worker, d1_activities

REPO_ROOT = Path(__file__).resolve().parents[2]
ORDERS = 50
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


async def _raw_history(temporal_address: str, workflow_ids: list[str]) -> dict[str, str]:
    """``temporal workflow show --output json`` per workflow, without any codec settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    gate = asyncio.Semaphore(4)

    async def show(wid: str) -> tuple[str, str]:
        async with gate:
            proc = await asyncio.create_subprocess_exec(
                temporal_cli(), "workflow", "show", "-w", wid, "--address", temporal_address,
                "--namespace", "default", "--output", "json",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            )
            out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        return wid, out.decode()

    return dict(await asyncio.gather(*(show(w) for w in workflow_ids)))


def _leak_order(rid: str, **card: Any) -> dict[str, Any]:
    return sample_order(rid, cardData=leak_card_data(**card), trackData=leak_track_data())


async def _operator_views(stack_orders: CardOrders, client: Client, rids: list[str]) -> list[str]:
    texts = []
    for rid in rids:
        view = await stack_orders.status(ISSUER_ID, rid)
        texts.append(view.model_dump_json())
        texts.append(repr(view))
    texts.append(repr(await stack_orders.list('IssuerRequestId STARTS_WITH "leak-"', limit=200)))
    return texts


def _search(sources: dict[str, list[str]], *, include_name: bool = True) -> list[str]:
    hits: list[str] = []
    for where, texts in sources.items():
        hits += find_leaks(where, texts, include_name=include_name)
    return hits


async def test_no_card_data_leaks_anywhere_through_the_mtls_stack(
    mtls_stack: MtlsStack, captured_logs: _Capture, capfd: pytest.CaptureFixture[str]
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
            _leak_order(f"leak-bad-{stamp}-spaced", pan=" ".join(LEAK_PAN[i:i + 4] for i in range(0, 16, 4))),
        ):
            with pytest.raises(InvalidOrder) as info:
                validate_order(bad)
            exceptions += [str(info.value), repr(info.value), repr(info.value.errors)]

        faults = {
            "dataExceptions": DATA_EXCEPTIONS,
            "orderFailures": [{"status": 400, "count": REJECTED_BY_D1, "errorCode": "FIELD_INVALID_FORMAT",
                               "error": "encryptedData.exp: month must be 01-12 (YYMM)"}],
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
        assert all(r.ref.masked_pan == LEAK_PAN[:6] + "******" + LEAK_PAN[-4:] for r in results)
        rejected = [r for r in results if r.state.outcome == Outcome.REJECTED]
        assert all(e.error_code for r in rejected for e in r.state.errors)

        queries = await _operator_views(mtls_stack.orders, mtls_stack.client, rids)
        queries += [r.model_dump_json() for r in results]
        for path in ("/_emulator/orders", "/_emulator/captured", "/_emulator/stats"):
            queries.append((await mtls_stack.emulator_admin("GET", path)).text)
        async with mtls_stack.http(mtls_stack.pki.notifier_client(ISSUER_ID)) as http:
            stats = await http.get(f"{mtls_stack.receiver_url}/_receiver/stats",
                                   headers={"authorization": f"Bearer {RECEIVER_OPERATOR_TOKEN}"})
            assert stats.status_code == 200, stats.text
            queries.append(stats.text)

        history = await _raw_history(mtls_stack.temporal_address, [s.workflow_id for s in submitted])
        assert len(history) == ORDERS and all('"eventType"' in h for h in history.values())
        codec = load_codec(mtls_stack.codec_keys_file)
        decrypted: list[str] = []
        for s in submitted:
            decrypted += await decrypted_history(mtls_stack.client, s.workflow_id, codec)
        # What the key holder does see: the D1 body with its JWE, and the masked PAN.
        joined = "\n".join(decrypted)
        assert '"encryptedData":"eyJ' in joined and f"{LEAK_PAN[:6]}******{LEAK_PAN[-4:]}" in joined

        spans = mtls_stack.spans.get_finished_spans()
        names = {s.name for s in spans}
        assert "StartWorkflow:CardOrderWorkflow" in names and "RunActivity:submit_order" in names, names
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
            "raw Temporal history": list(history.values()),
            "history decrypted with the codec key": decrypted,
            "JSON log record": captured_logs.json_lines,
            "exported span": [s.to_json() for s in spans],
            "exception": exceptions + loop_exceptions + captured_logs.exceptions,
            "query result / operator JSON": queries,
        }
    )
    assert hits == [], "card data leaked:\n" + "\n".join(hits[:30])


# ---------------------------------------------------------------- real processes


def _spawn(name: str, args: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    out = open(logs / f"{name}.log", "wb")  # owned by the child until it exits
    return subprocess.Popen(
        [sys.executable, *args], cwd=REPO_ROOT, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=out, stderr=subprocess.STDOUT,
    )


async def _wait_healthy(url: str, pki: LocalPki, procs: list[subprocess.Popen[bytes]], logs: Path) -> None:
    pair = pki.notifier_client(ISSUER_ID)
    from security.tls import client_ssl_context

    context = client_ssl_context(ca_file=pki.ca_cert, cert_file=pair.cert, key_file=pair.key)
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(verify=context, timeout=2) as http:
        while True:
            for p in procs:
                assert p.poll() is None, "\n".join(f.read_text() for f in logs.glob("*.log"))
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{url} did not come up"
            await asyncio.sleep(0.2)


async def test_no_card_data_in_the_output_of_component_processes(mtls_stack: MtlsStack, tmp_path: Path) -> None:
    pki, task_queue = mtls_stack.pki, "security-proc-orders"
    emulator_port, receiver_port = free_port(), free_port()
    receiver_url = f"https://127.0.0.1:{receiver_port}"
    logs = tmp_path / "logs"
    logs.mkdir()
    notifier = pki.notifier_client_template
    secret_file = mtls_stack.receiver_settings.oauth_client_secret_file
    assert secret_file is not None
    env = {
        "TEMPORAL_ADDRESS": mtls_stack.temporal_address,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "CODEC_KEYS_FILE": str(mtls_stack.codec_keys_file),
        "D1_ISSUER_ID": ISSUER_ID,
        "ORDER_RECONCILE_AFTER": "PT30S",
        "ORDER_QUIET_AFTER_SHIPPED": "PT60S",
        "ORDER_CLOSE_GRACE": "PT0.5S",
        "RECEIVER_PORT": str(receiver_port),
        "RECEIVER_TLS_CERT_FILE": str(pki.receiver_server.cert),
        "RECEIVER_TLS_KEY_FILE": str(pki.receiver_server.key),
        "RECEIVER_TLS_CLIENT_CA_FILE": str(pki.ca_cert),
        "RECEIVER_OAUTH_ENABLED": "true",
        "RECEIVER_OAUTH_CLIENT_ID": OAUTH_CLIENT_ID,
        "RECEIVER_OAUTH_CLIENT_SECRET_FILE": str(secret_file),
        "EMULATOR_PORT": str(emulator_port),
        "EMULATOR_STATE_DIR": str(tmp_path / "emulator"),
        "EMULATOR_ADMIN_API_ENABLED": "true",
        "D1_ENCRYPTION_PUBLIC_KEY_FILE": str(tmp_path / "emulator" / "d1-encryption-public.jwk"),
        "EMULATOR_ISSUER_KEYS_FILE": str(mtls_stack.tmp / "issuer-keys.json"),
        "EMULATOR_RECEIVER_URL": receiver_url,
        "EMULATOR_STEP_DELAY_MS": "20",
        "EMULATOR_NOTIFY_RETRY_BASE_MS": "50",
        "EMULATOR_NOTIFY_RETRY_CAP_MS": "500",
        "EMULATOR_TLS_CERT_FILE": str(pki.emulator_server.cert),
        "EMULATOR_TLS_KEY_FILE": str(pki.emulator_server.key),
        "EMULATOR_TLS_CA_FILE": str(pki.ca_cert),
        "EMULATOR_NOTIFY_CLIENT_CERT_FILE": str(notifier.cert),
        "EMULATOR_NOTIFY_CLIENT_KEY_FILE": str(notifier.key),
        "EMULATOR_NOTIFY_CA_FILE": str(pki.ca_cert),
        "EMULATOR_OUTBOUND_OAUTH_TOKEN_URL": f"{receiver_url}/oauth2/token",
        "EMULATOR_OUTBOUND_OAUTH_CLIENT_ID": OAUTH_CLIENT_ID,
        "EMULATOR_OUTBOUND_OAUTH_CLIENT_SECRET_FILE": str(secret_file),
    }
    procs = [
        _spawn("emulator", ["-m", "emulator", "--log-level", "debug"], env, logs),
        _spawn("receiver", ["-m", "receiver"], env, logs),
    ]
    stamp = int(time.time())
    try:
        await _wait_healthy(f"https://127.0.0.1:{emulator_port}/_emulator/health", pki, procs, logs)
        await _wait_healthy(f"{receiver_url}/healthz", pki, procs, logs)
        client_cert = pki.issuer_client(ISSUER_ID)
        d1 = D1ClientSettings(
            issuer_id=ISSUER_ID,
            banking_url=f"https://127.0.0.1:{emulator_port}/banking/v1",
            authz_url=f"https://127.0.0.1:{emulator_port}/authz/v1",
            signing_key_file=mtls_stack.d1_settings.signing_key_file,
            encryption_public_key_file=tmp_path / "emulator" / "d1-encryption-public.jwk",
            tls_client_cert_file=client_cert.cert,
            tls_client_key_file=client_cert.key,
            tls_ca_file=pki.ca_cert,
        )
        edge = OrderEdge.from_settings(d1)
        orders = CardOrders(mtls_stack.client, task_queue=task_queue, timing=fast_timing(), edge=edge)
        async with d1_activities(d1) as acts, build_worker(mtls_stack.client, task_queue, acts):
            rids = [f"leak-proc-{stamp}-{i}" for i in range(4)]
            await asyncio.gather(*(orders.submit(_leak_order(rid)) for rid in rids))
            # The starter CLI as a process, too (submit --wait, then status).
            order_file = tmp_path / "order.json"
            cli_rid = f"leak-proc-{stamp}-cli"
            order_file.write_text(json.dumps(_leak_order(cli_rid)))
            cli = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "starter", "submit", str(order_file), "--wait",
                cwd=REPO_ROOT, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            cli_out, _ = await asyncio.wait_for(cli.communicate(), timeout=120)
            status = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "starter", "status", cli_rid,
                cwd=REPO_ROOT, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            status_out, _ = await asyncio.wait_for(status.communicate(), timeout=60)
            assert cli.returncode == 0, cli_out.decode()
            views = await asyncio.wait_for(
                asyncio.gather(*(orders.wait(ISSUER_ID, rid) for rid in rids)), timeout=120
            )
            assert all(v.state.outcome == Outcome.DELIVERED for v in views)
            assert "DELIVERED" in cli_out.decode() + status_out.decode()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    emulator_log = (logs / "emulator.log").read_text()
    receiver_log = (logs / "receiver.log").read_text()
    assert "notification delivered" in emulator_log and "outbound OAuth token obtained" in emulator_log
    assert "access token issued" in receiver_log
    history = await _raw_history(mtls_stack.temporal_address, [v.workflow_id for v in views])
    codec = load_codec(mtls_stack.codec_keys_file)
    decrypted: list[str] = []
    for v in views:
        decrypted += await decrypted_history(mtls_stack.client, v.workflow_id, codec)
    hits = _search(
        {
            "emulator process": [emulator_log],
            "receiver process": [receiver_log],
            "starter CLI process": [cli_out.decode(), status_out.decode()],
            "raw Temporal history": list(history.values()),
            "history decrypted with the codec key": decrypted,
        }
    )
    assert hits == [], "card data leaked:\n" + "\n".join(hits[:30])
