"""Sampling profiles of the running processes with py-spy, and what they say in a few lines.

py-spy attaches to a process from outside (no code change, ``--nonblocking`` so the
target is not paused), which is why the benchmark runs every component as its own
process. Raw collapsed stacks are kept (load them in speedscope.app or flamegraph.pl);
the summary gives self time per function, inclusive time per function, and self time per
area (library or product package) so that the hot paths can be named in the docs.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Where a frame's file says the time went. Order matters: the first match wins.
AREAS: tuple[tuple[str, str], ...] = (
    ("SourceLoader.get_code", "import: compiling source (no bytecode cache)"),
    ("<frozen importlib", "import: module loading"),
    ("workflow_sandbox", "temporal: workflow sandbox"),
    ("temporalio/worker/_workflow_instance", "temporal: workflow instance"),
    ("temporalio/worker", "temporal: worker"),
    ("temporalio/converter", "temporal: data converter"),
    ("temporalio/contrib/pydantic", "temporal: data converter"),
    ("temporalio/client", "temporal: client"),
    ("temporalio/bridge", "temporal: core bridge"),
    ("temporalio", "temporal: other"),
    ("google/protobuf", "protobuf"),
    ("pydantic", "pydantic"),
    ("jwcrypto", "jose (jwcrypto)"),
    ("cryptography", "cryptography"),
    ("httpx", "httpx/httpcore"),
    ("httpcore", "httpx/httpcore"),
    ("h11", "h11 (HTTP/1.1)"),
    ("httptools", "uvicorn: httptools (HTTP/1.1)"),
    ("uvloop", "uvloop (event loop)"),
    ("uvicorn", "uvicorn"),
    ("starlette", "starlette"),
    ("anyio", "anyio"),
    ("logging", "logging"),
    ("security/redaction", "product: log redaction"),
    ("concurrent/futures", "thread pool"),
    ("re/__init__", "regex"),
    ("typing.py", "typing"),
    ("json", "json"),
    ("asyncio", "asyncio"),
    ("selectors", "asyncio"),
    ("workflows/", "product: workflows"),
    ("activities/", "product: activities"),
    ("receiver/", "product: receiver"),
    ("starter/", "product: starter"),
    ("security/", "product: codec"),
    ("d1/", "product: d1 models"),
    ("emulator/", "emulator"),
    ("bench/", "bench driver"),
)


# Named hot paths: inclusive time of any stack that passes through the needle.
HOT_PATHS: tuple[tuple[str, str], ...] = (
    ("new workflow instance (sandbox re-imports the workflow module)", "_create_workflow_instance"),
    ("compiling Python source (no bytecode cache)", "SourceLoader.get_code"),
    ("workflow activations (running workflow code)", "_WorkflowInstanceImpl.activate"),
    ("decoding activations (protobuf + codec)", "decode_activation"),
    ("encoding completions (protobuf + codec)", "encode_completion"),
    ("payload codec (AES-GCM)", "AesGcmCodec"),
    ("pydantic payload conversion", "contrib/pydantic.py"),
    ("state machine (OrderState.apply)", "OrderState.apply"),
    ("search attributes + details (_publish)", "CardOrderWorkflow._publish"),
    ("activity: submit_order (HTTP to D1)", "submit_order"),
    ("token provider", "AccessTokenProvider"),
    ("receiver: deliver (signal RPC)", "NotificationRouter.deliver"),
    ("receiver: body parsing (pydantic)", "NotificationBody"),
    ("logging (all handlers and formatters)", "Logger.handle"),
    ("uvicorn access log", "AccessFormatter"),
    ("log redaction", "security/redaction/"),
    ("HTTP server: request parsing (h11)", "H11Protocol.handle_events"),
    ("HTTP server: request parsing (httptools)", "HttpToolsProtocol.data_received"),
    ("receiver: body parsing (parse_body)", "parse_body"),
    ("receiver: per-notification span and metrics", "notification_operation_span"),
    ("receiver: whole request below the tracing middleware (inclusive)", "NotificationTracingMiddleware"),
    ("TLS (ssl module)", "ssl.py"),
    ("TLS handshakes (new connections)", "do_handshake"),
    ("receiver: caller authentication (mTLS identity, OAuth)", "check_notification"),
    ("HTTP client (httpx)", "httpx/_client.py"),
    ("starter: validate_order", "validate_order"),
    ("starter: _exists (describe RPC)", "CardOrders._exists"),
    ("starter: _refuse_if_card_busy (visibility query)", "_refuse_if_card_busy"),
    ("emulator: notifier", "Notifier._deliver"),
    ("emulator: order endpoint", "order_endpoint"),
)


def py_spy_binary() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


@dataclass
class Recording:
    name: str
    raw_path: Path
    proc: subprocess.Popen[bytes]


class Profiler:
    """py-spy recordings of several processes over one phase."""

    def __init__(self, out_dir: Path, rate: int = 250) -> None:
        self.out_dir = out_dir
        self.rate = rate
        self.binary = py_spy_binary()
        self.recordings: list[Recording] = []

    @property
    def available(self) -> bool:
        return self.binary is not None

    def start(self, name: str, pid: int) -> None:
        if self.binary is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        raw = self.out_dir / f"{name}.collapsed.txt"
        log = open(self.out_dir / f"{name}.py-spy.log", "wb")
        proc = subprocess.Popen(
            [
                self.binary,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(self.rate),
                "--format",
                "raw",
                "--output",
                str(raw),
                "--nonblocking",
                "--gil",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.recordings.append(Recording(name, raw, proc))

    def stop(self) -> dict[str, dict[str, Any]]:
        for rec in self.recordings:
            if rec.proc.poll() is None:
                rec.proc.send_signal(signal.SIGINT)
        out: dict[str, dict[str, Any]] = {}
        for rec in self.recordings:
            try:
                rec.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                rec.proc.kill()
                rec.proc.wait()
            if rec.raw_path.exists():
                out[rec.name] = summarise(rec.raw_path)
                out[rec.name]["raw"] = str(rec.raw_path)
        self.recordings.clear()
        return out


def _area(frame: str) -> str:
    for needle, area in AREAS:
        if needle in frame:
            return area
    return "other"


def _function(frame: str) -> str:
    """``func (path/file.py:123)`` → ``func (path/file.py)``: lines of one function together."""
    name, _, where = frame.rpartition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if name else frame


def summarise(raw_path: Path, top: int = 15) -> dict[str, Any]:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    paths: Counter[str] = Counter()
    total = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";")]
        total += count
        self_time[frames[-1]] += count
        areas[_area(frames[-1])] += count
        for f in set(frames):
            inclusive[f] += count
        for label, needle in HOT_PATHS:
            if needle in stack:
                paths[label] += count

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "self": pct(self_time),
        "inclusive": pct(inclusive),
        "areas": pct(areas),
        "hot_paths": [(k, p) for k, p in pct(Counter(dict(paths.most_common()))) if p >= 0.5],
    }
