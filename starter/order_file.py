"""A file of orders (JSONL or CSV; docs/order-format.md, "Files of orders"): every line
validated before anything starts, then the valid ones started by ``start_many``."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from d1.order import CardOrder
from d1.validation import FieldError, UnknownFields
from starter.api import CardOrders
from starter.d1_batches import BatchLimits
from starter.edge import OrderEdge
from starter.output import BulkProgress
from starter.start_many import Started, start_many

FileFormat = Literal["jsonl", "csv"]

CSV_BOOL_MEMBERS = frozenset({"services.pinMailer", "services.alphaCard"})
CSV_LIST_MEMBERS = frozenset(
    "cardDesign.images cardDesign.customLines cardCarrierConfig.images cardCarrierConfig.customLines "
    "packagingConfig.inserts".split()
)
LIST_SEPARATOR = "|"
SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


@dataclass
class FileLine:
    line: int
    order: CardOrder


@dataclass
class LineProblem:
    line: int
    problems: list[str]


@dataclass
class FileReport:
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
    d1_batches: int = 0  # D1 batch calls this run covered (starter/d1_batches.py)
    d1_batches_new: int = 0  # of which this run started (the others, an earlier run)
    _batches_seen: set[str] = field(default_factory=set, repr=False)

    def count(self, line: int, result: Started) -> None:
        if result.submitted is not None:
            self.started += result.submitted.created
            self.existing += not result.submitted.created
        elif result.refused is not None:
            self.refused.append(LineProblem(line, [result.refused]))
        else:
            self.failed.append(LineProblem(line, [result.failed or "not started"]))
        if result.d1_batch is not None and result.d1_batch not in self._batches_seen:
            self._batches_seen.add(result.d1_batch)
            self.d1_batches += 1
            self.d1_batches_new += result.d1_batch_created

    @property
    def exit_code(self) -> int:
        if self.failed or self.interrupted:
            return 1
        return 3 if self.refused else 2 if self.invalid else 0

    def summary(self, *, max_listed: int = 50) -> str:
        out = [f"batch {self.file}: {self.lines} order line(s), {self.valid} valid"]

        def section(title: str, items: list[LineProblem]) -> None:
            if not items:
                return
            out.append(f"  {title}: {len(items)}")
            out.extend(f"    line {item.line}: {problem}" for item in items[:max_listed] for problem in item.problems)
            if len(items) > max_listed:
                out.append(f"    ... and {len(items) - max_listed} more line(s)")

        section("invalid, nothing started for them", self.invalid)
        section("repeated lines, skipped", self.duplicates)
        section("warnings", self.warnings)
        if self.dry_run:
            out.append("  dry run: nothing started")
            return "\n".join(out)
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


def detect_format(path: Path, fmt: str | None = None) -> FileFormat:
    found = fmt if fmt in ("jsonl", "csv") else SUFFIX_FORMATS.get(path.suffix.lower())
    if found is None:
        raise ValueError(f"{path}: cannot tell the format from the extension; use --format jsonl|csv")
    return found  # type: ignore[return-value]


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
        *parents, leaf = name.split(".")
        node = order
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = value
    return order


def read_orders(path: Path, fmt: FileFormat) -> Iterator[tuple[int, dict[str, Any] | str]]:
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
            return
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            return
        start = reader.line_num + 1
        for row in reader:
            # More cells than headers land under the key None.
            yield start, "$: the row has more cells than the header" if None in row else csv_row_to_order(row)
            start = reader.line_num + 1


def validate_file(
    path: Path,
    *,
    fmt: FileFormat,
    default_issuer_id: str,
    edge: OrderEdge | None = None,
    unknown_fields: UnknownFields = "error",
) -> tuple[list[FileLine], FileReport]:
    """Validate every line; the valid ones (in file order) and the report so far."""
    edge = edge or OrderEdge.from_settings()
    report = FileReport(file=str(path))
    valid: list[FileLine] = []
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
        fingerprint = hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        earlier = by_request.get((order.issuerId, order.issuerRequestId))
        other = by_card.get((order.issuerId, order.cardId))
        if earlier is not None and earlier[1] == fingerprint:
            report.duplicates.append(LineProblem(number, [f"same order as line {earlier[0]}"]))
            continue
        if earlier is not None:
            error = FieldError("$.issuerRequestId", f"is also used by line {earlier[0]} for a different order")
        elif other is not None:
            error = FieldError(
                "$.cardId",
                f"is already ordered by line {other[0]} (issuerRequestId {other[1]}); "
                "D1 allows one open order per card",
            )
        else:
            by_request[(order.issuerId, order.issuerRequestId)] = (number, fingerprint)
            by_card[(order.issuerId, order.cardId)] = (number, order.issuerRequestId)
            if line_warnings:
                report.warnings.append(LineProblem(number, [str(w) for w in line_warnings]))
            valid.append(FileLine(number, order))
            continue
        report.invalid.append(LineProblem(number, [str(error)]))
    report.valid = len(valid)
    return valid, report


class Progress(BulkProgress):
    """submit-batch's progress on stderr, fed with the report's counts."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        super().__init__("submit-batch", stream=stream)
        self.total = total

    def show(self, report: FileReport) -> None:
        refused, failed = len(report.refused), len(report.failed)
        detail = f"started {report.started}  existing {report.existing}  refused {refused}  failed {failed}"
        self.update(report.started + report.existing + refused + failed, self.total, detail)


async def start_lines(
    orders: CardOrders,
    lines: list[FileLine],
    report: FileReport,
    *,
    d1_batches: BatchLimits | None = None,
    concurrency: int = 32,
    progress: Progress | None = None,
) -> FileReport:
    """Start the valid lines (``start_many``), counted into ``report`` as each settles (or interrupted)."""

    def count(result: Started) -> None:
        report.count(lines[result.index].line, result)
        if progress is not None:
            progress.show(report)

    started_at = time.monotonic()
    try:
        await start_many(
            orders, [line.order for line in lines], d1_batches=d1_batches, concurrency=concurrency, on_result=count
        )
    except asyncio.CancelledError:
        report.interrupted = True
        raise
    finally:
        report.elapsed_s = time.monotonic() - started_at
        if progress is not None:
            progress.show(report)
            progress.close()
    return report


async def submit_file(
    orders: CardOrders | None,
    path: Path,
    *,
    default_issuer_id: str,
    fmt: str | None = None,
    concurrency: int = 32,
    dry_run: bool = False,
    unknown_fields: UnknownFields = "error",
    d1_batches: BatchLimits | None = None,
    show_progress: bool = True,
) -> FileReport:
    """Validate the whole file, then start its valid lines (unless ``dry_run``); with
    ``d1_batches``, their submission to D1 goes through D1's batch API."""
    edge = orders.edge if orders is not None else None
    lines, report = validate_file(
        path,
        fmt=detect_format(path, fmt),
        default_issuer_id=default_issuer_id,
        edge=edge,
        unknown_fields=unknown_fields,
    )
    report.dry_run = dry_run
    if dry_run or not lines:
        return report
    assert orders is not None, "a CardOrders client is needed unless dry_run"
    progress = Progress(len(lines)) if show_progress else None
    return await start_lines(orders, lines, report, d1_batches=d1_batches, concurrency=concurrency, progress=progress)
