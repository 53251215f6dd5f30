"""Progress of a matrix: a rich live display on a terminal, plain log lines elsewhere (CI, files)."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from statistics import mean
from typing import Any, Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichBar, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from benchbd.harness.records import after_field

#: Seconds from an arbitrary origin, like :func:`time.perf_counter` (a test passes its own).
Clock = Callable[[], float]

NO_ETA = "-:--:--"

#: The line above the finished-cells table: what its entries are.
FINISHED_CELLS_LEGEND = "finished cells: AUROC, then ASR after retraining (%, a set's highest); mean over seeds"


def cell_name(record: dict[str, Any]) -> str:
    """The attack set and defense of a record: ``patch / spectral``."""
    return f"{'+'.join(record['attacks']) or 'no attack'} / {record['defense']}"


class Progress:
    """Plain log lines on stderr: one when a cell starts, per step of long work in it (a training's epochs, a
    defense's own loop), and when a cell ends (with the matrix's ETA)."""

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self.clock = clock
        self.total = 0
        self.completed = 0
        self.measured = 0
        self.started = clock()
        self.last_finished = self.started

    def _log(self, text: str) -> None:
        print(f"[benchbd {self.clock() - self.started:7.1f}s] {text}", file=sys.stderr, flush=True)

    def seconds_left(self) -> float | None:
        """The matrix's remaining time: the mean wall-clock cost of the cells finished in this run (not those skipped
        as finished before) times the cells left, counted down since the last one finished; None before the first."""
        if not self.measured:
            return None
        cost = (self.last_finished - self.started) / self.measured
        return max(0.0, cost * (self.total - self.completed) - (self.clock() - self.last_finished))

    def eta(self) -> str:
        """:meth:`seconds_left` as ``H:MM:SS``, or ``-:--:--`` before the first cell has finished."""
        seconds = self.seconds_left()
        return NO_ETA if seconds is None else str(timedelta(seconds=round(seconds)))

    def start(self, total: int) -> None:
        self.total = total
        self.started = self.last_finished = self.clock()
        self._log(f"matrix of {total} cells")

    def skip(self, count: int) -> None:
        if count:
            self.completed += count
            self._log(f"{count} cell(s) already finished, skipped ({self.completed}/{self.total})")

    def cell_started(self, description: str) -> None:
        self._log(description)

    def step(self, label: str, done: int, total: int) -> None:
        """Long work inside the current cell: a training's epochs, a defense's own loop."""
        self._log(f"  {label} {done}/{total}")

    def cell_finished(self, record: dict[str, Any]) -> None:
        self.completed += 1
        self.measured += 1
        self.last_finished = self.clock()
        self._log(f"done {self.completed}/{self.total}: {cell_name(record)}: {record['status']} (ETA {self.eta()})")

    def finish(self) -> None:
        self._log("matrix finished")


class SilentProgress(Progress):
    """No output: for matrix work inside Ray workers, whose driver reports progress."""

    def _log(self, text: str) -> None:
        pass


def attack_set_label(record: dict[str, Any]) -> str:
    """A finished-cells column: the single attack (or ``no attack``), or ``multi (N)`` for a multi-attack set."""
    if record["mode"] == "multi":
        return f"multi ({len(record['attacks'])})"
    return "+".join(record["attacks"]) or "no attack"


def asr_after_retraining(record: dict[str, Any]) -> float | None:
    """The record's highest ASR after retraining over its attacks; a baseline's (unit ``none``) is the poisoned
    model's own ASR, as in the leaderboard; None if the record has none."""
    rates = record.get(after_field(record, "asr")) or {}
    values = [rate for rate in rates.values() if rate is not None]
    return max(values) if values else None


def result_text(records: list[dict[str, Any]]) -> Text:
    """One finished-cells entry: mean AUROC and mean ASR after retraining (%) over the seeds that have them."""
    ok = [r for r in records if r["status"] == "ok"]
    aurocs = [r["auroc"] for r in ok if r.get("auroc") is not None]
    asrs = [asr for r in ok if (asr := asr_after_retraining(r)) is not None]
    parts = ([f"{mean(aurocs):.2f}"] if aurocs else []) + ([f"{100 * mean(asrs):.0f}%"] if asrs else [])
    if parts:
        return Text(" ".join(parts))
    if any(r["status"] == "error" for r in records):
        return Text("error", style="red")
    if any(r["status"] == "not_applicable" for r in records):
        return Text("n/a", style="dim")
    return Text("–")


def finished_cells_table(records: list[dict[str, Any]]) -> Table:
    """Defense × attack set of the records so far, each entry a :func:`result_text`, in the order cells finished."""
    by_cell: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        by_cell.setdefault((record["defense"], attack_set_label(record)), []).append(record)
    defenses = list(dict.fromkeys(defense for defense, _ in by_cell))
    attack_sets = list(dict.fromkeys(attack_set for _, attack_set in by_cell))
    table = Table(box=None, padding=(0, 1))
    table.add_column("defense", no_wrap=True)
    for attack_set in attack_sets:
        table.add_column(attack_set, justify="right", overflow="fold")
    for defense in defenses:
        table.add_row(defense, *(result_text(by_cell.get((defense, a), [])) for a in attack_sets))
    return table


class EtaColumn(ProgressColumn):
    """The matrix's ETA (:meth:`Progress.eta`), on the row of the task that counts cells."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def render(self, task: Task) -> Text:
        return Text(f"ETA {self.progress.eta()}" if task.fields.get("cells") else "")


class RichProgress(Progress):
    """A live view: the cells done/total with the matrix's ETA, the current cell by name with its epochs, and the
    table of finished cells."""

    def __init__(self, console: Console, clock: Clock = time.perf_counter) -> None:
        super().__init__(clock)
        self.console = console
        self.bars = RichBar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            EtaColumn(self),
            console=console,
            get_time=clock,
        )
        self.cells = self.bars.add_task("cells", total=None, cells=True)
        self.epochs = self.bars.add_task("", total=None, visible=False)
        self.current_cell = ""
        self.records: list[dict[str, Any]] = []
        self.live = Live(console=console, get_renderable=self.renderable, refresh_per_second=4)

    def _log(self, text: str) -> None:
        pass

    def renderable(self) -> RenderableType:
        """What the live view shows now."""
        parts: list[RenderableType] = [self.bars]
        if self.current_cell:
            parts.insert(0, Text.assemble(("cell ", "bold"), self.current_cell))
        if self.records:
            parts += [Text(FINISHED_CELLS_LEGEND, style="italic"), finished_cells_table(self.records)]
        return Group(*parts)

    def start(self, total: int) -> None:
        super().start(total)
        self.bars.reset(self.cells, total=total)
        self.live.start()

    def skip(self, count: int) -> None:
        super().skip(count)
        self.bars.update(self.cells, completed=self.completed)

    def cell_started(self, description: str) -> None:
        self.current_cell = description
        self.bars.reset(self.epochs, description="", total=None, visible=False)

    def step(self, label: str, done: int, total: int) -> None:
        self.bars.update(self.epochs, description=label, completed=done, total=total, visible=True)

    def cell_finished(self, record: dict[str, Any]) -> None:
        super().cell_finished(record)
        self.records.append(record)
        self.bars.update(self.cells, completed=self.completed)
        if record["status"] == "error":
            failure = escape(f"{cell_name(record)}: {record['error']}")
            self.console.print(f"[red]error[/red] {failure}", highlight=False)

    def finish(self) -> None:
        self.current_cell = ""
        self.bars.update(self.epochs, visible=False)
        self.live.stop()


def make_progress(console: Console) -> Progress:
    return RichProgress(console) if console.is_terminal else Progress()
