"""How the CLI prints: the one progress display of its bulk commands (a rich bar on a
terminal, a few plain lines in a log) and the ``list`` table (a header, one order per line)."""

from __future__ import annotations

import io

import pytest

from starter.api import OrderSummary
from starter.order_file import FileReport, LineProblem, Progress
from starter.output import BulkProgress, print_orders_table


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich reads these to override what the stream says (forced colours, a dumb terminal)."""
    for name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_progress_is_a_line_per_tenth_without_redraws() -> None:
    log = io.StringIO()
    with BulkProgress("reconcile", stream=log) as progress:
        for done in range(1001):
            progress.update(done, 1000, f"done {done}")
    lines = log.getvalue().splitlines()
    assert lines == [f"reconcile: {n * 100}/1000 ({n * 10}%)  done {n * 100}" for n in range(11)]
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()


def test_an_interrupted_run_says_where_it_stopped_and_an_empty_one_says_so() -> None:
    log = io.StringIO()
    with BulkProgress("reconcile", stream=log) as progress:
        for done in range(38):
            progress.update(done, 100)
    assert log.getvalue().splitlines()[-2:] == ["reconcile: 30/100 (30%)", "reconcile: 37/100 (37%)"]
    empty = io.StringIO()
    with BulkProgress("reconcile", stream=empty) as progress:
        progress.update(0, 0)
    assert empty.getvalue() == "reconcile: nothing matched\n"


def test_on_a_terminal_progress_is_a_bar_redrawn_in_place() -> None:
    tty = Terminal()
    progress = BulkProgress("reconcile", stream=tty)
    assert progress.redraws
    for done in range(11):
        progress.update(done, 10, "[red]not markup")
    progress.close()
    out = tty.getvalue()
    assert "\x1b[" in out and "10/10" in out and "100%" in out
    assert "[red]not markup" in out  # details are shown as they are, never read as markup


def test_submit_batch_progress_counts_every_settled_line() -> None:
    log = io.StringIO()
    report = FileReport(file="orders.jsonl", started=6, existing=2, refused=[LineProblem(3, ["r"])])
    progress = Progress(10, stream=log)
    progress.show(report)
    report.failed.append(LineProblem(9, ["f"]))
    progress.show(report)
    progress.close()
    assert log.getvalue().splitlines() == [
        "submit-batch: 9/10 (90%)  started 6  existing 2  refused 1  failed 0",
        "submit-batch: 10/10 (100%)  started 6  existing 2  refused 1  failed 1",
    ]


def test_the_list_table_has_a_header_and_one_order_per_line_however_long() -> None:
    long_id = "card-order:TESTISS001:" + "r" * 120
    orders = [
        OrderSummary(long_id, "RUNNING", "card-[bold]1", "r" * 120, "CARD_PROD_ONGOING", None),
        OrderSummary("card-order:TESTISS001:req-2", "COMPLETED", None, "req-2", "CARD_SHIPPED", "DELIVERED"),
    ]
    out = io.StringIO()
    print_orders_table(orders, out)
    lines = out.getvalue().splitlines()
    assert [line.split() for line in lines] == [
        ["WorkflowId", "Status", "CardId", "ProductionStatus", "Outcome"],
        [long_id, "RUNNING", "card-[bold]1", "CARD_PROD_ONGOING", "-"],
        ["card-order:TESTISS001:req-2", "COMPLETED", "-", "CARD_SHIPPED", "DELIVERED"],
    ]
    assert "\x1b" not in out.getvalue() and "─" not in out.getvalue()  # no styles or box drawing in a pipe
