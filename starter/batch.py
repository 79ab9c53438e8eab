"""Batch submission: a JSONL or CSV file of orders (thousands), validated first, then started.

    python -m starter submit-batch orders.jsonl [--concurrency 32] [--dry-run]

1. **Every line is validated before anything starts** (the same rules as one order:
   contract, cross-field, program configuration). Bad lines are reported by line number
   with every problem, and nothing is started for them. Two lines with the same
   ``issuerRequestId`` but different content, or two requests for the same ``cardId``, are
   errors too (D1 allows one open order per card); an identical repeated line is skipped.
2. The valid lines are started with bounded concurrency (``--concurrency``) and a progress
   bar on stderr.
3. **Re-running is safe**: the workflow id is the idempotency key (issuerId +
   issuerRequestId), so an order started by an earlier, interrupted run is recognised
   (counted as "already started"), never started or sent to D1 twice.
4. A summary at the end; the exit code says what happened (0 all started or already
   there, 2 some lines invalid, 3 some refused, 1 some failed: re-run to retry them).

Formats (by extension, or ``--format``):

* **JSONL** (``.jsonl``, ``.ndjson``): one order per line, exactly the single-order JSON.
  Blank lines are skipped.
* **CSV** (``.csv``): a header row of dotted member paths (``cardData.pan``,
  ``services.issuance``, ``shipment.deliveryAddress.countryCode``...), one order per row.
  Empty cells are absent members. ``services.pinMailer`` / ``services.alphaCard`` take
  ``true`` / ``false``; list members (``cardDesign.images``, ``cardDesign.customLines``,
  ``cardCarrierConfig.images``, ``cardCarrierConfig.customLines``,
  ``packagingConfig.inserts``) take values separated by ``|``.

A line without ``issuerId`` gets the default issuer (``--issuer-id`` / ``D1_ISSUER_ID``).
Card data is never printed: reasons name fields, and the only fingerprint kept of a line
(to spot repeated lines) is a hash in memory.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from d1.order import CardOrder
from d1.validation import FieldError, UnknownFields
from starter.api import CardOrders, OrderRefused
from starter.d1_batch import BatchLimits, group, start_batch
from starter.edge import OrderEdge, PreparedOrder
from starter.progress import BulkProgress

BatchFormat = Literal["jsonl", "csv"]

CSV_BOOL_MEMBERS = frozenset({"services.pinMailer", "services.alphaCard"})
CSV_LIST_MEMBERS = frozenset(
    {
        "cardDesign.images",
        "cardDesign.customLines",
        "cardCarrierConfig.images",
        "cardCarrierConfig.customLines",
        "packagingConfig.inserts",
    }
)
LIST_SEPARATOR = "|"


@dataclass
class BatchLine:
    line: int
    order: CardOrder
    warnings: list[str] = field(default_factory=list)


@dataclass
class LineProblem:
    line: int
    problems: list[str]


@dataclass
class BatchReport:
    file: str
    lines: int = 0
    valid: int = 0
    invalid: list[LineProblem] = field(default_factory=list)
    duplicates: list[LineProblem] = field(default_factory=list)
    warnings: list[LineProblem] = field(default_factory=list)
    started: int = 0
    existing: int = 0
    refused: list[LineProblem] = field(default_factory=list)
    failed: list[LineProblem] = field(default_factory=list)
    interrupted: bool = False
    dry_run: bool = False
    elapsed_s: float = 0.0
    d1_batches: int = 0  # D1 batch calls this run covered (starter/d1_batch.py)
    d1_batches_new: int = 0  # of which this run started (the others, an earlier run)

    @property
    def exit_code(self) -> int:
        if self.failed or self.interrupted:
            return 1
        if self.refused:
            return 3
        if self.invalid:
            return 2
        return 0

    def summary(self, *, max_listed: int = 50) -> str:
        out = [f"batch {self.file}: {self.lines} order line(s), {self.valid} valid"]

        def section(title: str, items: list[LineProblem]) -> None:
            if not items:
                return
            out.append(f"  {title}: {len(items)}")
            for item in items[:max_listed]:
                for problem in item.problems:
                    out.append(f"    line {item.line}: {problem}")
            if len(items) > max_listed:
                out.append(f"    ... and {len(items) - max_listed} more line(s)")

        section("invalid, nothing started for them", self.invalid)
        section("repeated lines, skipped", self.duplicates)
        section("warnings", self.warnings)
        if self.dry_run:
            out.append("  dry run: nothing started")
        else:
            out.append(f"  started: {self.started}")
            out.append(f"  already started (earlier run): {self.existing}")
            if self.d1_batches:
                out.append(
                    f"  D1 batches: {self.d1_batches} ({self.d1_batches_new} started now, "
                    f"{self.d1_batches - self.d1_batches_new} by an earlier run)"
                )
            section("refused (card has another open order)", self.refused)
            section("failed (re-run to retry them)", self.failed)
            if self.interrupted:
                out.append("  INTERRUPTED: re-run the same command to finish; started orders are recognised")
            out.append(f"  took {self.elapsed_s:.1f}s")
        return "\n".join(out)


# ------------------------------------------------------------------------- reading


def detect_format(path: Path, fmt: str | None = None) -> BatchFormat:
    if fmt in ("jsonl", "csv"):
        return fmt  # type: ignore[return-value]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ValueError(f"{path}: cannot tell the format from the extension; use --format jsonl|csv")


def _set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def csv_row_to_order(row: dict[str, str | None]) -> dict[str, Any]:
    """A CSV row (dotted member paths as headers) as the order's nested JSON object."""
    order: dict[str, Any] = {}
    for header, cell in row.items():
        if not header or cell is None or cell.strip() == "":
            continue
        name = header.strip()
        value: Any = cell.strip()
        if name in CSV_BOOL_MEMBERS and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        elif name in CSV_LIST_MEMBERS:
            value = [v.strip() for v in value.split(LIST_SEPARATOR) if v.strip()]
        _set_path(order, name, value)
    return order


def read_orders(path: Path, fmt: BatchFormat) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, raw order) for each order line, or (line number, problem) when unreadable."""
    with path.open(encoding="utf-8", newline="") as fh:
        if fmt == "jsonl":
            for number, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    raw = json.loads(text)
                except (ValueError, RecursionError):
                    yield number, "$: the line is not valid JSON"
                    continue
                yield number, raw if isinstance(raw, dict) else "$: an order must be a JSON object"
        else:
            reader = csv.DictReader(fh)
            if not reader.fieldnames:
                return
            start = reader.line_num + 1
            for row in reader:
                if None in row:  # more cells than headers
                    yield start, "$: the row has more cells than the header"
                else:
                    yield start, csv_row_to_order(row)
                start = reader.line_num + 1


def _fingerprint(raw: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def validate_file(
    path: Path,
    *,
    fmt: BatchFormat,
    default_issuer_id: str,
    edge: OrderEdge | None = None,
    unknown_fields: UnknownFields = "error",
) -> tuple[list[BatchLine], BatchReport]:
    """Validate every line; the valid ones (in file order) and the report so far."""
    edge = edge or OrderEdge.from_settings()
    report = BatchReport(file=str(path))
    valid: list[BatchLine] = []
    by_request: dict[tuple[str, str], tuple[int, str]] = {}
    by_card: dict[tuple[str, str], tuple[int, str]] = {}
    for number, raw in read_orders(path, fmt):
        report.lines += 1
        if isinstance(raw, str):
            report.invalid.append(LineProblem(number, [raw]))
            continue
        raw.setdefault("issuerId", default_issuer_id)
        order, errors, line_warnings = edge.check(raw, unknown_fields=unknown_fields)
        if order is None:
            report.invalid.append(LineProblem(number, [str(e) for e in errors]))
            continue
        fingerprint = _fingerprint(raw)
        request_key = (order.issuerId, order.issuerRequestId)
        card_key = (order.issuerId, order.cardId)
        earlier = by_request.get(request_key)
        if earlier is not None:
            if earlier[1] == fingerprint:
                report.duplicates.append(LineProblem(number, [f"same order as line {earlier[0]}"]))
            else:
                report.invalid.append(
                    LineProblem(
                        number,
                        [
                            str(
                                FieldError(
                                    "$.issuerRequestId", f"is also used by line {earlier[0]} for a different order"
                                )
                            )
                        ],
                    )
                )
            continue
        other = by_card.get(card_key)
        if other is not None:
            report.invalid.append(
                LineProblem(
                    number,
                    [
                        str(
                            FieldError(
                                "$.cardId",
                                f"is already ordered by line {other[0]} (issuerRequestId {other[1]}); "
                                "D1 allows one open order per card",
                            )
                        )
                    ],
                )
            )
            continue
        by_request[request_key] = (number, fingerprint)
        by_card[card_key] = (number, order.issuerRequestId)
        if line_warnings:
            report.warnings.append(LineProblem(number, [str(w) for w in line_warnings]))
        valid.append(BatchLine(number, order, [str(w) for w in line_warnings]))
    report.valid = len(valid)
    return valid, report


# ------------------------------------------------------------------------ progress


class Progress:
    """submit-batch's progress on stderr: the CLI's one progress display (starter/progress.py)
    fed with the report's counts."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self._display = BulkProgress("submit-batch", stream=stream)

    def update(self, report: BatchReport) -> None:
        done = report.started + report.existing + len(report.refused) + len(report.failed)
        self._display.update(
            done,
            self.total,
            f"started {report.started}  existing {report.existing}  "
            f"refused {len(report.refused)}  failed {len(report.failed)}",
        )

    def close(self, report: BatchReport) -> None:
        self.update(report)
        self._display.close()


# ------------------------------------------------------------------------- running


@contextmanager
def _timed_run(report: BatchReport, progress: Progress | None) -> Iterator[None]:
    """Both ways of starting lines: an interrupted run is reported as such, with its time
    and the progress display closed, whatever ended it."""
    started_at = time.monotonic()
    try:
        yield
    except asyncio.CancelledError:
        report.interrupted = True
        raise
    finally:
        report.elapsed_s = time.monotonic() - started_at
        if progress is not None:
            progress.close(report)


async def start_orders(
    orders: CardOrders,
    lines: list[BatchLine],
    report: BatchReport,
    *,
    concurrency: int = 32,
    progress: Progress | None = None,
) -> BatchReport:
    """Start every valid line, ``concurrency`` at a time; already-started orders are recognised."""
    queue: asyncio.Queue[BatchLine] = asyncio.Queue()
    for line in lines:
        queue.put_nowait(line)

    async def worker() -> None:
        while True:
            try:
                line = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                submitted = await orders.submit(line.order)
            except OrderRefused as err:
                report.refused.append(LineProblem(line.line, [str(err)]))
            except Exception as err:  # reported per line; the other lines go on
                report.failed.append(LineProblem(line.line, [f"{type(err).__name__}: {str(err)[:200]}"]))
            else:
                if submitted.created:
                    report.started += 1
                else:
                    report.existing += 1
            if progress is not None:
                progress.update(report)

    with _timed_run(report, progress):
        workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(lines) or 1)))]
        try:
            await asyncio.gather(*workers)
        except asyncio.CancelledError:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
    return report


async def start_orders_in_d1_batches(
    orders: CardOrders,
    lines: list[BatchLine],
    report: BatchReport,
    *,
    limits: BatchLimits,
    concurrency: int = 32,
    progress: Progress | None = None,
) -> BatchReport:
    """Start every valid line, its submission to D1 shared by batches (starter/d1_batch.py)."""

    def tick() -> None:
        if progress is not None:
            progress.update(report)

    with _timed_run(report, progress):  # the edge's preparation (JWE per card) counts too
        prepared: list[PreparedOrder] = []
        line_of: dict[str, int] = {}
        for line in lines:
            try:
                order = orders.edge.prepare(line.order, timing=orders.timing)
            except Exception as err:  # the D1 key unreadable, ...: reported per line
                report.failed.append(LineProblem(line.line, [f"{type(err).__name__}: {str(err)[:200]}"]))
                continue
            prepared.append(order)
            line_of[order.workflow_id] = line.line
        for batch in group(prepared, limits):
            outcome = await start_batch(orders, batch, concurrency=concurrency, on_card=tick)
            report.d1_batches += 1
            report.d1_batches_new += int(outcome.batch_created)
            for _, submitted in outcome.submitted:
                if submitted.created:
                    report.started += 1
                else:
                    report.existing += 1
            report.refused += [LineProblem(line_of[p.workflow_id], [why]) for p, why in outcome.refused]
            report.failed += [LineProblem(line_of[p.workflow_id], [why]) for p, why in outcome.failed]
            tick()
    return report


async def start_lines(
    orders: CardOrders,
    lines: list[BatchLine],
    report: BatchReport,
    *,
    d1_batch: BatchLimits | None,
    concurrency: int,
    progress: Progress | None,
) -> BatchReport:
    """Each valid line's own D1 submission, or (``d1_batch``) shared D1 batch calls."""
    if d1_batch is not None:
        return await start_orders_in_d1_batches(
            orders, lines, report, limits=d1_batch, concurrency=concurrency, progress=progress
        )
    return await start_orders(orders, lines, report, concurrency=concurrency, progress=progress)


async def submit_batch(
    orders: CardOrders | None,
    path: Path,
    *,
    default_issuer_id: str,
    fmt: str | None = None,
    concurrency: int = 32,
    dry_run: bool = False,
    unknown_fields: UnknownFields = "error",
    edge: OrderEdge | None = None,
    show_progress: bool = True,
    d1_batch: BatchLimits | None = None,
) -> BatchReport:
    """Validate the whole file, then start its valid lines (unless ``dry_run``); with
    ``d1_batch``, their submission to D1 goes through D1's batch API."""
    lines, report = validate_file(
        path,
        fmt=detect_format(path, fmt),
        default_issuer_id=default_issuer_id,
        edge=edge or (orders.edge if orders is not None else None),
        unknown_fields=unknown_fields,
    )
    report.dry_run = dry_run
    if dry_run or not lines:
        return report
    assert orders is not None, "a CardOrders client is needed unless dry_run"
    progress = Progress(len(lines)) if show_progress else None
    return await start_lines(orders, lines, report, d1_batch=d1_batch, concurrency=concurrency, progress=progress)


async def run_batch_command(
    path: Path,
    *,
    default_issuer_id: str,
    fmt: str | None = None,
    concurrency: int = 32,
    dry_run: bool = False,
    unknown_fields: UnknownFields = "error",
    orders: CardOrders | None = None,
    out: TextIO | None = None,
    d1_batch: BatchLimits | None = None,
) -> int:
    """``python -m starter submit-batch``: validate, start, print the summary, return the exit code.
    On Ctrl-C the summary still says what was started; re-running finishes the file."""
    out = out if out is not None else sys.stdout
    try:
        lines, report = await asyncio.to_thread(
            validate_file,
            path,
            fmt=detect_format(path, fmt),
            default_issuer_id=default_issuer_id,
            edge=orders.edge if orders is not None else None,
            unknown_fields=unknown_fields,
        )
    except (OSError, ValueError) as exc:
        print(f"{path}: cannot read the batch file: {exc}", file=sys.stderr)
        return 2
    report.dry_run = dry_run
    if report.invalid:
        print(f"{path}: {len(report.invalid)} invalid line(s), nothing will be started for them", file=sys.stderr)
    if not dry_run and lines:
        if orders is None:
            from settings import TemporalSettings

            orders = await CardOrders.connect(TemporalSettings())
        try:
            await start_lines(
                orders, lines, report, d1_batch=d1_batch, concurrency=concurrency, progress=Progress(len(lines))
            )
        except (asyncio.CancelledError, KeyboardInterrupt):
            report.interrupted = True
            print(report.summary(), file=out)
            raise
    print(report.summary(), file=out)
    return report.exit_code
