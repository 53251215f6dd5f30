"""The Ray executor: a local Ray on CPU runs a small matrix with the same records and resume as the local one."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbd.cli import main
from benchbd.harness.results import read_records

ray = pytest.importorskip("ray")


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_matrix_through_ray_matches_the_local_executor(tiny_signs: Path, tmp_path: Path, local_ray, capsys) -> None:
    argv = ["matrix", "--dataset", f"npz:{tiny_signs}", "--attacks", "patch", "--defenses", "none,spectral",
            "--mode", "single", "--device", "cpu"]
    assert main([*argv, "--executor", "ray", "--out", str(tmp_path / "ray")]) == 0
    # Ray workers run torch on one thread, as every test does (conftest.py): float reductions match bit for bit.
    assert main([*argv, "--out", str(tmp_path / "local")]) == 0
    timing = {"seconds", "train_seconds"}
    by_ray, local = (
        sorted(({k: v for k, v in r.items() if k not in timing} for r in read_records(tmp_path / name / "results.jsonl")),
               key=lambda r: r["defense"])
        for name in ("ray", "local")
    )
    assert len(by_ray) == 2 and all(r["status"] == "ok" for r in by_ray)
    assert by_ray == local
    assert list((tmp_path / "ray" / "models").glob("*.pt"))
    capsys.readouterr()
    assert main([*argv, "--executor", "ray", "--out", str(tmp_path / "ray")]) == 0
    assert "0 cell(s) run, 2 already finished" in capsys.readouterr().out
