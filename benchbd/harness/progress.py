"""Progress of a matrix: a rich live display on a terminal, plain log lines elsewhere (CI, files)."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichBar, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Progress:
    """Plain log lines on stderr: one when a cell starts, per epoch, and when a cell ends."""

    def __init__(self) -> None:
        self.total = 0
        self.completed = 0
        self.started = time.perf_counter()

    def _log(self, text: str) -> None:
        print(f"[benchbd {time.perf_counter() - self.started:7.1f}s] {text}", file=sys.stderr, flush=True)

    def start(self, total: int) -> None:
        self.total = total
        self._log(f"matrix of {total} cells")

    def skip(self, count: int) -> None:
        if count:
            self.completed += count
            self._log(f"{count} cell(s) already finished, skipped ({self.completed}/{self.total})")

    def cell_started(self, description: str) -> None:
        self._log(description)

    def epoch(self, label: str, epoch: int, epochs: int) -> None:
        self._log(f"  {label}: epoch {epoch}/{epochs}")

    def cell_finished(self, record: dict[str, Any]) -> None:
        self.completed += 1
        self._log(f"done {self.completed}/{self.total}: {'+'.join(record['attacks']) or 'no attack'} / {record['defense']}: {record['status']}")

    def finish(self) -> None:
        self._log("matrix finished")


class SilentProgress(Progress):
    """No output: for matrix work inside Ray workers, whose driver reports progress."""

    def _log(self, text: str) -> None:
        pass


class RichProgress(Progress):
    """A live bar of cells done/total with ETA, plus a line for the current cell and its epoch."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.bar = RichBar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.cells = self.bar.add_task("cells", total=None)
        self.current = self.bar.add_task("", total=None)

    def start(self, total: int) -> None:
        self.bar.update(self.cells, total=total)
        self.bar.start()

    def skip(self, count: int) -> None:
        self.bar.advance(self.cells, count)

    def cell_started(self, description: str) -> None:
        self.bar.update(self.current, description=description, completed=0, total=None)

    def epoch(self, label: str, epoch: int, epochs: int) -> None:
        self.bar.update(self.current, description=f"{label}: epoch", completed=epoch, total=epochs)

    def cell_finished(self, record: dict[str, Any]) -> None:
        self.bar.advance(self.cells)
        if record["status"] == "error":
            cell = escape(f"{'+'.join(record['attacks']) or 'no attack'} / {record['defense']}: {record['error']}")
            self.bar.console.print(f"[red]error[/red] {cell}", highlight=False)

    def finish(self) -> None:
        self.bar.stop()


def make_progress(console: Console) -> Progress:
    return RichProgress(console) if console.is_terminal else Progress()
