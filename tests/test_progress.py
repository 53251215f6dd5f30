"""The matrix's progress: the ETA from measured cells, the live view's current cell and its finished-cells table."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console

from benchbd.harness.progress import Progress, RichProgress, finished_cells_table


class FakeClock:
    """A clock a test sets by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(attacks: list[str], defense: str, unit: str, mode: str = "single", status: str = "ok", **fields: Any) -> dict[str, Any]:
    return {"attacks": attacks, "defense": defense, "unit": unit, "mode": mode, "status": status, "error": None, **fields}


def rendered(renderable: Any) -> str:
    """The renderable as a 100-column terminal shows it, as plain text."""
    console = Console(file=io.StringIO(), width=100, force_terminal=True, record=True)
    console.print(renderable)
    return console.export_text()


def test_eta_counts_only_the_cells_measured_in_this_run() -> None:
    clock = FakeClock()
    progress = Progress(clock)
    progress.start(4)
    progress.skip(1)
    assert progress.eta() == "-:--:--"
    clock.now = 10.0
    progress.cell_finished(record(["patch"], "none", "none"))
    clock.now = 30.0
    progress.cell_finished(record(["patch"], "spectral", "example"))
    assert progress.eta() == "0:00:15"  # 2 cells in 30 s (the skipped one cost nothing), 1 left
    clock.now = 40.0
    assert progress.eta() == "0:00:05"  # counted down since the last cell finished
    clock.now = 60.0
    assert progress.eta() == "0:00:00"


def test_plain_done_line_has_the_eta(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    progress = Progress(clock)
    progress.start(4)
    clock.now = 10.0
    progress.cell_finished(record(["patch"], "none", "none"))
    clock.now = 30.0
    progress.cell_finished(record(["patch"], "spectral", "example"))
    assert "done 2/4: patch / spectral: ok (ETA 0:00:30)" in capsys.readouterr().err


def test_live_view_names_the_cell_and_shows_eta_and_results() -> None:
    clock = FakeClock()
    console = Console(file=io.StringIO(), width=100, force_terminal=True)
    progress = RichProgress(console, clock)
    progress.start(4)
    try:
        progress.cell_started("patch / training the poisoned model / seed 0")
        progress.step("poisoned model: epoch", 8, 8)
        clock.now = 10.0
        progress.cell_started("patch / none / seed 0")
        progress.cell_finished(record(["patch"], "none", "none", asr={"patch": 0.97}))
        clock.now = 30.0
        progress.cell_started("patch / spectral / seed 0")
        progress.cell_finished(record(["patch"], "spectral", "example", auroc=0.91, asr={"patch": 0.97}, asr_after={"patch": 0.05}))
        progress.cell_started("patch / activation-clustering / seed 0")
        progress.step("retrain after activation-clustering: epoch", 2, 8)
        text = rendered(progress.renderable())
    finally:
        progress.finish()
    lines = text.splitlines()
    assert lines[0].strip() == "cell patch / activation-clustering / seed 0"
    assert re.search(r"^cells .* 2/4 .*ETA 0:00:30", lines[1])
    assert re.search(r"^retrain after activation-clustering: epoch .* 2/8", lines[2])
    assert "finished cells" in text
    assert re.search(r"^ *defense +patch *$", text, re.MULTILINE)
    assert re.search(r"^ *none +97% *$", text, re.MULTILINE)
    assert re.search(r"^ *spectral +0\.91 5% *$", text, re.MULTILINE)
    assert all(len(line) <= 100 for line in lines)


def test_finished_cells_table_entries() -> None:
    records = [
        record(["patch"], "spectral", "example", auroc=0.8, asr_after={"patch": 0.10}),
        record(["patch"], "spectral", "example", auroc=0.9, asr_after={"patch": 0.30}),  # a second seed
        record(["patch"], "aegis", "model", auroc=None),
        record(["wanet"], "aegis", "model", auroc=0.75),
        record(["wanet"], "spectral", "example", status="error", error="ValueError: boom"),
        record(["patch", "wanet"], "spectral", "example", mode="multi", auroc=0.6, asr_after={"patch": 0.02, "wanet": 0.4}),
        record([], "spectral", "example", status="not_applicable"),
    ]
    text = rendered(finished_cells_table(records))
    assert re.search(r"^ *defense +patch +wanet +multi \(2\) +no attack *$", text, re.MULTILINE)
    assert re.search(r"^ *spectral +0\.85 20% +error +0\.60 40% +n/a *$", text, re.MULTILINE)
    assert re.search(r"^ *aegis +– +0\.75 +– +– *$", text, re.MULTILINE)
