"""benchmarks/gpu_aegis.py, issue 17's prepared GPU job: its quick run on the CPU trains and judges the population,
finds AEGIS's robust backdoored model by the harness's cache key and probes its target class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_the_quick_job_judges_the_population_and_probes_the_robust_backdoored_model(tmp_path: Path) -> None:
    out = tmp_path / "aegis.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread, as every test's training (tests/conftest.py)
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_aegis.py"), "--quick", "--device", "cpu", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    matrix, composition = report["sections"]["matrix"], report["sections"]["composition"]
    assert matrix["status"] == "ok", matrix
    training = matrix["training"]
    assert set(training) == {"poisoned model", "backdoored model for aegis", "clean model 1"}
    assert all(p["epochs"] == p["planned"] == 2 and p["per_epoch"]["value"] > 0 for p in training.values())
    record = matrix["record"]
    assert record["status"] == "ok" and len(record["clean"]) == 1
    assert set(record["backdoored"]["cluster_counts"]) == {"0"} and 0 <= record["backdoored"]["adversarial_accuracy"] <= 1
    assert composition["status"] == "ok" and composition["lines"][0].startswith("class 0, draw 0:")
    assert any(line.strip().startswith("cluster of") for line in composition["lines"][1:])
    run_dir = out.with_suffix(".run")
    assert (run_dir / "results.jsonl").is_file() and not (run_dir / "models").exists()  # the models stay behind
    assert "composition: ok" in result.stdout
