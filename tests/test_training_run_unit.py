"""The harness's training-run unit: `benchbd matrix --attacks blind,patch --defenses rttd` on tiny data."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbd.cli import main
from benchbd.harness.results import read_records


def test_rttd_cells_report_malicious_and_benign_servers_flagged(tiny_signs: Path, tmp_path: Path) -> None:
    argv = ["matrix", "--dataset", f"npz:{tiny_signs}", "--attacks", "blind,patch", "--defenses", "rttd", "--mode", "single",
            "--device", "cpu", "--out", str(tmp_path), "-P", "patch.ratio=0.1", "-P", "rttd.sub_run_steps=4"]
    assert main(argv) == 0
    records = {r["attacks"][0]: r for r in read_records(tmp_path / "results.jsonl")}
    assert set(records) == {"blind", "patch"}
    for record in records.values():
        assert record["unit"] == "training-run" and record["status"] == "ok"
        assert record["servers"] == 4 and record["malicious_servers"] == 2
        assert record["tpr"] == 1.0 and record["fpr"] == 0.0, record["details"]["per_server"]
        steps = 8 * 7  # 430 images in batches of 64, 8 epochs
        assert record["overhead_frac"] == pytest.approx(2 * 4 * 3 / steps)
    assert "Table 5: training-run detection" in (tmp_path / "leaderboard.md").read_text()
