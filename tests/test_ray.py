"""The Ray executor: a local Ray on CPU runs a small matrix with the same records and resume as the local one."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbd.cli import main
from benchbd.harness.config import MatrixConfig
from benchbd.harness.executors import run_on_ray
from benchbd.harness.plan import Plan
from benchbd.harness.results import RunDirectory, outcome, read_records
from benchbd.registry import default_registry

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray that declares one GPU it does not have: tasks asking for one are scheduled (one at a time) as
    on a GPU machine, and run on the CPU. Its workers inherit OMP_NUM_THREADS=1 whatever the caller set (Ray
    passes a set value on, and sets 1 only when there is none): torch on one thread, as every test (conftest.py)."""
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("OMP_NUM_THREADS", "1")
        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
        yield
        ray.shutdown()


def test_matrix_through_ray_matches_the_local_executor(tiny_signs: Path, tmp_path: Path, local_ray, capsys) -> None:
    """BaDLoss draws its probes, the harness the trusted set: a Ray worker's cell streams are the local ones (2
    epochs: the records' equality is the point)."""
    argv = ["matrix", "--dataset", f"npz:{tiny_signs}", "--attacks", "patch", "--defenses", "none,badloss",
            "--mode", "single", "--device", "cpu", "--profile", "cpu", "--epochs", "2", "-P", "patch.ratio=0.1"]
    assert main([*argv, "--executor", "ray", "--out", str(tmp_path / "ray")]) == 0
    # Ray workers run torch on one thread (local_ray), as this process does: float reductions match bit for bit.
    assert main([*argv, "--out", str(tmp_path / "local")]) == 0
    by_ray, local = (
        sorted((outcome(r) for r in read_records(tmp_path / name / "results.jsonl")),
               key=lambda r: r["defense"])
        for name in ("ray", "local")
    )
    assert len(by_ray) == 2 and all(r["status"] == "ok" for r in by_ray)
    assert by_ray == local
    assert list((tmp_path / "ray" / "models").glob("*.pt"))
    capsys.readouterr()
    assert main([*argv, "--executor", "ray", "--out", str(tmp_path / "ray")]) == 0
    assert "0 cell(s) run, 2 already finished" in capsys.readouterr().out


def test_ray_tasks_that_request_a_gpu_are_scheduled_and_run(tiny_signs: Path, tmp_path: Path, local_ray) -> None:
    """The executor's GPU branch (each group a task of one GPU) on a CPU-only Ray that declares one."""
    config = MatrixConfig(dataset=f"npz:{tiny_signs}", attacks=["patch", "single-pixel"], defenses=["none"], mode="single",
                          device="cpu", profile="cpu", epochs=2, executor="ray", out=tmp_path)
    plan = Plan(config, default_registry())
    work = plan.pending(set())
    assert len(work) == 2
    run_dir = RunDirectory(tmp_path)
    try:
        records = list(run_on_ray(config, run_dir.path, work, use_gpu=True))
    finally:
        run_dir.close()
    assert sorted(r["attacks"][0] for r in records) == ["patch", "single-pixel"]
    assert all(r["status"] == "ok" for r in records)
