"""benchmarks/gpu_check.py, the prepared GPU check: its quick run on the CPU writes every section's figures, and a
section that overruns its budget or fails is recorded as such."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def gpu_check(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports loop_vs_trainer from beside itself
    return importlib.import_module("gpu_check")


def test_the_quick_check_writes_every_sections_figures(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread, as every test's training (tests/conftest.py)
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_check.py"), "--quick", "--device", "cpu", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    sections = report["sections"]
    assert {name: entry["status"] for name, entry in sections.items()} == {"loop": "ok", "accuracy": "ok", "stacked": "ok", "matrix": "ok"}, sections
    assert report["environment"]["torch"] and "git_commit" in report["environment"]
    assert {name: entry["budget"]["value"] for name, entry in sections.items()} == dict.fromkeys(sections, 200.0)  # --quick's

    narrow = sections["loop"]["models"]["narrow-cnn"]
    trainer, baseline = narrow["trainer"]["epoch"]["value"], narrow["baseline"]["epoch"]["value"]
    assert trainer > 0 and baseline > 0 and narrow["trainer"]["epoch"]["unit"] == "s/epoch"
    assert narrow["speedup"]["value"] == pytest.approx(baseline / trainer)
    assert narrow["trainer"]["throughput"]["value"] == pytest.approx(sections["loop"]["images"] / trainer)
    assert narrow["training_flops"]["value"] > 0 and narrow["ceiling_fraction"] is None  # the ceiling is CUDA's alone

    accuracy = sections["accuracy"]
    epochs = accuracy["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, accuracy["epochs_planned"] + 1))
    training = [e["training"]["value"] for e in epochs]
    assert 0 < training[0] and training == sorted(training)
    assert all(0 <= e["test_accuracy"]["value"] <= 1 for e in epochs)
    reached, target = accuracy["epochs_to_target"], accuracy["target"]["value"]
    assert accuracy["time_to_target"]["value"] == training[reached - 1]
    assert [e["test_accuracy"]["value"] >= target for e in epochs[:reached]] == [False] * (reached - 1) + [True]

    stacked = sections["stacked"]["models"]["narrow-cnn"]
    assert sections["stacked"]["trainings"] == 4 and stacked["stacked"]["value"] > 0
    assert stacked["gain"]["value"] == pytest.approx(stacked["one_after_another"]["value"] / stacked["stacked"]["value"])

    matrix = sections["matrix"]
    assert matrix["wall"]["value"] > 0 and matrix["cells_total"] == matrix["cells_finished"] == 6  # 3 groups × 2 defenses
    assert matrix["cells_failed"] == [] and "projected_wall" not in matrix
    phases = matrix["phases"]
    assert set(phases) == {"poisoned-model training", "defense none", "defense spectral", "the rest"}
    assert phases["poisoned-model training"]["seconds"]["value"] > 0 and phases["defense spectral"]["seconds"]["value"] > 0
    assert sum(p["share"]["value"] for p in phases.values()) == pytest.approx(1)

    assert (tmp_path / "check.matrix.jsonl").is_file() and (tmp_path / "check.loop.log").is_file()
    assert "loop: ok" in result.stdout and "stacked: ok" in result.stdout and "matrix: ok" in result.stdout


def test_a_section_past_its_budget_is_stopped_and_keeps_what_it_wrote(gpu_check: ModuleType, tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    command = [sys.executable, "-c", f"import json, time; open({str(figures)!r}, 'w').write(json.dumps({{'done': 1}})); time.sleep(120)"]
    section = gpu_check.Section("slow", 3.0, command, lambda elapsed: json.loads(figures.read_text()) if figures.is_file() else {})
    entries: list[dict] = []
    started = time.perf_counter()
    gpu_check.run_section(section, tmp_path / "slow.log", entries.append)
    assert time.perf_counter() - started < 30
    assert entries[0]["status"] == "running"
    assert entries[-1]["status"] == "timeout" and entries[-1]["exit_code"] is None and entries[-1]["done"] == 1


def test_a_failing_section_is_recorded_with_the_end_of_its_log(gpu_check: ModuleType, tmp_path: Path) -> None:
    section = gpu_check.Section("broken", 60.0, [sys.executable, "-c", "raise SystemExit('the device broke')"], lambda elapsed: {})
    entries: list[dict] = []
    gpu_check.run_section(section, tmp_path / "broken.log", entries.append)
    assert entries[-1]["status"] == "error" and entries[-1]["exit_code"] == 1
    assert "the device broke" in entries[-1]["error"]
