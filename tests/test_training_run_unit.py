"""The harness's training-run unit: `benchbd matrix --attacks blind,patch --defenses rttd` on tiny data, with the cpu
profile's narrow-cnn: these tests are about the unit's records, not about how well a model learns."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbd.cli import main
from benchbd.harness.results import read_records
from benchbd.leaderboard.tables import build_tables


def test_rttd_cells_report_malicious_and_benign_servers_flagged(tiny_signs: Path, tmp_path: Path) -> None:
    # Benign replicas bit-identical (kernel_noise 0: on a CPU one batch order gives one result), so that the test
    # asserts the unit's records and not a coin flip: with noisy replicas, a benign primary's distances and the
    # reference pair's are different pairs, whose spread the split-level KS test does not model, and a benign
    # primary is flagged on some machines' rounding (issue 17 measures RTTD against realistic replicas).
    argv = ["matrix", "--dataset", f"npz:{tiny_signs}", "--attacks", "blind,patch", "--defenses", "rttd", "--mode", "single",
            "--device", "cpu", "--profile", "cpu", "--out", str(tmp_path), "-P", "patch.ratio=0.1", "-P", "rttd.sub_run_steps=4",
            "-P", "simulation.kernel_noise=0", "--epochs", "4"]
    assert main(argv) == 0
    records = {r["attacks"][0]: r for r in read_records(tmp_path / "results.jsonl")}
    assert set(records) == {"blind", "patch"}
    for record in records.values():
        assert record["unit"] == "training-run" and record["status"] == "ok"
        assert record["servers"] == 4 and record["malicious_servers"] == 2
        # RTTD replicates each eligible sub-run with probability m / their count: a job may draw none, and its
        # primary is then not judged (not flagged). Every judged server is flagged exactly when it is malicious.
        judged = [bool(server["pvalue"]) for server in record["details"]["per_server"]]
        malicious, flagged = record["server_malicious"], record["server_flagged"]
        assert sum(malicious) == 2
        assert flagged == [m and j for m, j in zip(malicious, judged)], record["details"]["per_server"]
        assert any(flagged) and record["fpr"] == 0.0
        assert record["tpr"] == sum(flagged) / 2
        steps = 4 * 7  # 430 images in batches of 64, 4 epochs (sub-runs of 4 steps tile them)
        drawn = sum(len(server["start_step"]) for server in record["details"]["per_server"])  # m = 2 expected a job
        assert record["overhead_frac"] == pytest.approx(drawn * 4 * 3 / (4 * steps))
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert "Table 5: training-run detection" in markdown and "Table 2" not in markdown


def test_with_no_attack_every_server_is_benign_and_a_flag_is_a_false_positive(tiny_signs: Path, tmp_path: Path) -> None:
    argv = ["matrix", "--dataset", f"npz:{tiny_signs}", "--attacks", "none", "--defenses", "rttd", "--mode", "single",
            "--device", "cpu", "--profile", "cpu", "--out", str(tmp_path), "-P", "rttd.sub_run_steps=4", "-P", "simulation.kernel_noise=0",
            "--epochs", "4"]
    assert main(argv) == 0
    (record,) = read_records(tmp_path / "results.jsonl")
    assert record["status"] == "ok" and record["malicious_servers"] == 0 and not any(record["server_malicious"])
    assert record["tpr"] is None and record["fpr"] == sum(record["server_flagged"]) / 4
    # Bit-identical benign replicas (kernel noise 0): a replicated benign server matches its replica exactly.
    assert record["fpr"] == 0.0
    table = next(t for t in build_tables([record]) if t.title.startswith("Table 5"))
    (row,) = table.rows
    assert row[:2] == ["rttd", "No attack (kernel_noise=0.0)"] and row[3] == "0.00"  # benign servers flagged
