"""Crash safety, fault isolation, determinism and exclusive run directories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
import torch

import benchbd
from benchbd.attacks import TrainingCodeAttack
from benchbd.cli import main
from benchbd.errors import BenchbdError
from benchbd.harness.cells import CellTimeout, time_limit
from benchbd.harness.matrix import Matrix
from benchbd.harness.config import MatrixConfig
from benchbd.harness.progress import Progress
from benchbd.harness.results import RunDirectory, outcome, read_records
from benchbd.registry import Registry, default_registry, make_manager

def matrix_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["matrix", "--dataset", f"npz:{data}", "--attacks", "patch", "--defenses", "none,spectral",
            "--device", "cpu", "--profile", "cpu", "--out", str(out), *extra]


def test_kill_9_then_resume_loses_and_duplicates_nothing(tiny_signs: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # One thread, as the resume below in this process (tests/conftest.py): one computation, not two.
    process = subprocess.Popen([sys.executable, "-m", "benchbd.cli", *matrix_argv(tiny_signs, out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    results = out / "results.jsonl"
    deadline = time.monotonic() + 300
    while not (results.is_file() and results.read_text().count("\n") >= 1):
        assert process.poll() is None, "the matrix ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed = read_records(results)
    assert 1 <= len(killed) <= 2
    assert main(matrix_argv(tiny_signs, out)) == 0
    records = read_records(results)
    assert len(records) == 2 and len({r["config_hash"] for r in records}) == 2
    assert records[: len(killed)] == killed
    assert not list(out.rglob("*.tmp"))


def test_torn_last_line_is_reported_and_skipped(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps({"config_hash": "a", "status": "ok"}) + "\n" + '{"config_hash": "b", "sta')
    run_dir = RunDirectory(tmp_path)
    run_dir.append({"config_hash": "c", "status": "ok"})
    with pytest.warns(UserWarning, match="torn or corrupt line"):
        hashes = [r["config_hash"] for r in run_dir.records()]
    run_dir.close()
    assert hashes == ["a", "c"]


def test_a_second_matrix_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    first = RunDirectory(tmp_path)
    with pytest.raises(BenchbdError, match="in use by another benchbd matrix"):
        RunDirectory(tmp_path)
    first.close()
    RunDirectory(tmp_path).close()


def test_a_run_directory_of_another_setting_is_refused_before_any_training(tiny_signs: Path, tmp_path: Path, capsys) -> None:
    """One run directory, one dataset, model and profile: a matrix at another profile is refused (exit 2, one line)
    before it trains or logs an invocation."""
    assert main(matrix_argv(tiny_signs, tmp_path, "--defenses", "none", "--mode", "single")) == 0
    invocations = (tmp_path / "invocations.jsonl").read_text()
    capsys.readouterr()
    assert main(matrix_argv(tiny_signs, tmp_path, "--defenses", "none", "--mode", "single", "--epochs", "1")) == 2
    error = capsys.readouterr().err
    assert "holds records of dataset" in error and "profile cpu (epochs=1)" in error and "epoch 1/1" not in error
    assert (tmp_path / "invocations.jsonl").read_text() == invocations and len(read_records(tmp_path / "results.jsonl")) == 1


def test_a_run_made_over_two_invocations_keeps_both_configs(tiny_signs: Path, tmp_path: Path) -> None:
    """Seed 1 added later with --first-seed: invocations.jsonl holds both invocations' configs, not only the last,
    and each record names the environment it was computed in."""
    argv = matrix_argv(tiny_signs, tmp_path, "--defenses", "none", "--mode", "single", "--epochs", "1")
    assert main(argv) == 0
    assert main([*argv, "--first-seed", "1"]) == 0
    first, second = read_records(tmp_path / "invocations.jsonl")
    assert (first["config"]["first_seed"], second["config"]["first_seed"]) == (0, 1)
    assert first["started"] <= second["started"]
    records = read_records(tmp_path / "results.jsonl")
    assert sorted(r["seed"] for r in records) == [0, 1]
    assert all(r["environment"] == second["environment"] for r in records)
    assert records[0]["environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_a_resume_under_another_cpu_thread_count_is_warned_of(tiny_signs: Path, tmp_path: Path) -> None:
    """float32 training on a CPU differs by thread count: new cells joining records of another are not the same
    computation, and the run says so."""
    argv = matrix_argv(tiny_signs, tmp_path, "--defenses", "none", "--mode", "single", "--epochs", "1")
    assert main(argv) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main([*argv, "--first-seed", "1"]) == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        with pytest.warns(UserWarning, match=f"computed under .* on {threads} threads, and this run computes under "
                                             f".* on {threads + 1} threads"):
            assert main([*argv, "--first-seed", "2"]) == 0
    finally:
        torch.set_num_threads(threads)


def test_same_seed_same_records_whether_run_at_once_or_resumed(tiny_signs: Path, tmp_path: Path) -> None:
    """Run b is resumed: its spectral cell judges the poisoned model loaded from the run's cache, not one just trained."""
    assert main(matrix_argv(tiny_signs, tmp_path / "a")) == 0
    assert main([*matrix_argv(tiny_signs, tmp_path / "b"), "--defenses", "none"]) == 0
    assert main(matrix_argv(tiny_signs, tmp_path / "b")) == 0
    runs = [[outcome(r) for r in read_records(tmp_path / name / "results.jsonl")]
            for name in ("a", "b")]
    assert runs[0] == runs[1]


@dataclass
class Exploding(benchbd.ExampleDefense):
    name: ClassVar[str] = "exploding"
    description: ClassVar[str] = "raises"

    def score_examples(self, context):
        raise ValueError("boom")


@dataclass
class NanLoss(TrainingCodeAttack):
    name: ClassVar[str] = "nan-loss"
    description: ClassVar[str] = "poisons the loss with NaN"

    def trigger(self, x, *, test_time=False):
        return x

    def loss_computation(self, honest):
        return lambda model, x, y, step: honest(model, x, y, step) * float("nan")


def registry_with_test_plugins() -> Registry:
    manager = make_manager()
    for name, plugin in default_registry().manager.list_name_plugin():
        manager.register(plugin, name=name)
    manager.register(SimpleNamespace(
        benchbd_defenses=benchbd.hookimpl(lambda: [Exploding]),
        benchbd_attacks=benchbd.hookimpl(lambda: [NanLoss]),
    ), name="test-plugins")
    return Registry(manager, {"test-plugins": "tests"})


def test_a_failing_plugin_fails_its_cell_only(tiny_signs: Path, tmp_path: Path) -> None:
    config = MatrixConfig(dataset=f"npz:{tiny_signs}", attacks=["patch", "nan-loss"], defenses=["exploding", "none"],
                          device="cpu", out=tmp_path, mode="single")
    summary = Matrix(config, registry_with_test_plugins(), Progress()).run()
    records = {(r["attacks"][0], r["defense"]): r for r in read_records(tmp_path / "results.jsonl")}
    assert records[("patch", "none")]["status"] == "ok"
    exploded = records[("patch", "exploding")]
    assert exploded["status"] == "error" and "ValueError: boom" in exploded["error"]
    log = Path(exploded["error"].split("traceback: ")[1].rstrip(")"))
    assert "Traceback" in log.read_text() and "boom" in log.read_text()
    assert all("diverged" in records[("nan-loss", d)]["error"] for d in ("none", "exploding"))
    assert len(summary.failed) == 3


def test_time_limit_interrupts_a_long_cell() -> None:
    started = time.perf_counter()
    with pytest.raises(CellTimeout, match="exceeded the cell time limit of 0.2 s"):
        with time_limit(0.2, "defense sleepy"):
            time.sleep(10)
    assert time.perf_counter() - started < 2
    with time_limit(None, "no limit"):
        pass
