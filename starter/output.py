"""What the CLI prints: text for people, JSON for scripts, progress on stderr (docs/operations.md).
Nothing here prints card data: a view holds the masked PAN only, an invalid order names fields."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, TextIO

from rich import box
from rich import progress as rp
from rich.console import Console
from rich.table import Table
from rich.text import Text

from contracts.card_order import ChangeRecord, ChangeStatus, OrderView, TimelineEntry
from contracts.card_tracking import TrackingView
from d1.validation import InvalidOrder
from starter.reads import OrderSummary


def invalid_text(source: str, err: InvalidOrder) -> str:
    return "\n".join(
        [
            f"{source}: the order is invalid, nothing was started ({len(err.errors)} problem(s)):",
            *(f"  - {fe.path}: {fe.reason}" for fe in err.errors),
            *(f"  warning: {fw.path}: {fw.reason}" for fw in err.warnings),
        ]
    )


def format_view(view: OrderView) -> str:
    st = view.state
    lines = [
        f"order      {view.workflow_id}",
        f"card       {view.ref.card_id}  (PAN {view.ref.masked_pan or '-'})",
        f"production {st.production_status or '-'}   due {st.due_date or '-'}   site {st.production_site or '-'}",
    ]
    if st.shipment:
        s = st.shipment
        lines.append(
            f"shipment   {s.status or '-'} via {s.carrier or '-'} #{s.trackingNumber or '-'}  {s.message or ''}"
        )
    if st.outcome:
        lines.append(f"outcome    {st.outcome.value}" + (f" ({st.outcome_reason})" if st.outcome_reason else ""))
    if view.ref.replaces_card_id:
        lines.append(f"replaces   card {view.ref.replaces_card_id} ({view.ref.replacement_reason or '-'})")
    if st.activation is not None:
        lines.append(f"activation {st.activation.flag.value} at {st.activation.activated_at}")
    for e in st.errors:
        lines.append(f"error      [{e.source}] {e.http_status or ''} {e.error_code or ''} {e.error or ''}".rstrip())
    for c in st.changes:
        lines.append(f"change     {c.change_id}: {c.in_words()}")
    return "\n".join([*lines, "timeline", *map(_timeline_line, st.timeline)])


def change_text(command: str, record: ChangeRecord, issuer_request_id: str) -> str:
    """What a pull & change command prints: the change, who asked and approved, what comes next."""
    line = f"{command} {record.change_id}: {record.in_words()}"
    if record.status == ChangeStatus.AWAITING_APPROVAL:
        return f"{line}\nanother operator approves it with: approve {issuer_request_id} {record.change_id}"
    return f"{line}; follow it with: status {issuer_request_id}"


def _timeline_line(t: TimelineEntry) -> str:
    ship = f" / {t.shipment_status}" if t.shipment_status else ""
    return f"  {t.d1_time:<26} {t.production_status or t.operation}{ship}  ({t.source})"


# ``list -o json`` prints every field of OrderSummary; the table all but the issuer request
# id (it is the end of the workflow id).
LIST_COLUMNS = (
    ("WorkflowId", "workflow_id"),
    ("Status", "status"),
    ("CardId", "card_id"),
    ("ProductionStatus", "production_status"),
    ("Outcome", "outcome"),
)


def json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def print_orders_table(orders: Sequence[OrderSummary], file: TextIO | None = None) -> None:
    """A header row, then one order per line; "-" for an empty cell, so columns stay countable."""
    out = file if file is not None else sys.stdout
    console = Console(file=out, highlight=False)
    table = Table(box=box.SIMPLE_HEAD if console.is_terminal else None, show_edge=False, pad_edge=False)
    for header, _ in LIST_COLUMNS:
        table.add_column(header, no_wrap=True)
    for order in orders:
        # Text, not str: an id is never read as rich markup.
        table.add_row(*(Text(getattr(order, name) or "-") for _, name in LIST_COLUMNS))
    needed = console.measure(table, options=console.options.update_width(10_000)).maximum
    if needed > console.width:
        # Never cut or fold a row to fit (a terminal's width, or 80 columns in a pipe): a
        # long row stays one line, which grep and awk rely on.
        console = Console(file=out, highlight=False, width=needed)
    console.print(table)


def tracking_text(view: TrackingView) -> str:
    st = view.state
    reason = f" ({st.outcome_reason})" if st.outcome_reason else ""
    outcome = f"outcome    {st.outcome.value if st.outcome else '-'}{reason}"
    return "\n".join([f"tracking   {view.workflow_id}", outcome, *map(_timeline_line, st.timeline)])


PLAIN_STEPS = 10  # plain lines at 0 %, 10 %, ... 100 %


class BulkProgress(AbstractContextManager["BulkProgress"]):
    """``update(done, total, detail)`` as work completes; ``close()`` (or ``with``) at the end.
    ``detail`` is plain text, never markup: ids and reasons are printed as they are."""

    def __init__(self, label: str, *, stream: TextIO | None = None) -> None:
        self.label = label
        self._console = Console(file=stream or sys.stderr, highlight=False)
        self.redraws = self._console.is_terminal
        self._bar: rp.Progress | None = None
        self._task = rp.TaskID(0)
        self._last: tuple[int, int, str] | None = None
        self._shown: tuple[int, int, str] | None = None
        self._closed = False

    def update(self, done: int, total: int, detail: str = "") -> None:
        if self._closed:
            return
        self._last = (done, total, detail)
        if total <= 0:
            return  # said once, at close: "nothing matched"
        if not self.redraws:
            if self._shown is None or done * PLAIN_STEPS // total != self._shown[0] * PLAIN_STEPS // self._shown[1]:
                self._plain(done, total, detail)
            return
        if self._bar is None:
            text = rp.TextColumn("{task.description}", markup=False)
            detail_column = rp.TextColumn("{task.fields[detail]}", markup=False)
            columns = (rp.BarColumn(), rp.MofNCompleteColumn(), rp.TaskProgressColumn(), rp.TimeElapsedColumn())
            self._bar = rp.Progress(text, *columns, detail_column, console=self._console)
            self._task = self._bar.add_task(self.label, total=total, completed=done, detail=detail)
            self._bar.start()
        self._bar.update(self._task, total=total, completed=done, detail=detail)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.stop()  # the last frame stays on screen, followed by a newline
        elif self._last is None or self._last[1] <= 0:
            self._console.print(f"{self.label}: nothing matched", markup=False, soft_wrap=True)
        elif self._last != self._shown:
            self._plain(*self._last)  # where it stopped (an interrupted run ends between two tenths)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _plain(self, done: int, total: int, detail: str) -> None:
        self._shown = (done, total, detail)
        line = f"{self.label}: {done}/{total} ({done * 100 // total}%)" + (f"  {detail}" if detail else "")
        self._console.print(line, markup=False, soft_wrap=True)
