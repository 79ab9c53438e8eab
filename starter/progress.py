"""The progress display of the CLI's bulk commands (``submit-batch``, ``reconcile --stuck``...).

Progress goes to stderr, so stdout keeps only the command's result (a summary, JSON).
On a terminal it is a ``rich`` progress bar redrawn in place. Anywhere else (a CI job's
log, a file, a pipe) redraw sequences would fill the log with carriage returns, so it
prints a few plain lines instead: the start, each further tenth done, and the end.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich import progress as rp
from rich.console import Console

PLAIN_STEPS = 10  # plain lines at 0 %, 10 %, ... 100 %


class BulkProgress:
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

    def __enter__(self) -> BulkProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _plain(self, done: int, total: int, detail: str) -> None:
        self._shown = (done, total, detail)
        line = f"{self.label}: {done}/{total} ({done * 100 // total}%)" + (f"  {detail}" if detail else "")
        self._console.print(line, markup=False, soft_wrap=True)
