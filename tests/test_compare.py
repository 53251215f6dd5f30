"""The BaDLoss paper's Tables 1-3 shipped as data, and ``benchbd leaderboard --compare badloss`` beside them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from benchbd.cli import main
from benchbd.leaderboard.cells import Table
from benchbd.leaderboard.render import print_tables, render_run
from benchbd.papers import paper_table

SIX = ["patch", "single-pixel", "blend-random", "blend-dimple", "sinusoid", "wanet"]


def record(defense: str, seed: int, attacks: list[str], **fields) -> dict:
    """A record as the harness writes it, of a GTSRB-family dataset; ``family=None`` for one made before records
    named their family."""
    base = {"dataset": "synth-signs", "family": "gtsrb", "model": "small-cnn", "profile": "fast",
            "mode": "multi" if len(attacks) > 1 else "single", "attacks": attacks, "defense": defense,
            "unit": "none" if defense == "none" else "example", "seed": seed, "status": "ok", "error": None,
            "clean_acc": 0.9, "asr": {a: 0.95 for a in attacks}, "config_hash": f"{defense}{seed}{attacks}",
            "code": {"benchbd": "b1", "attacks": {a: "a1" for a in attacks}, "defense": "d1"}}
    return {key: value for key, value in {**base, **fields}.items() if value is not None}


def compare(tmp_path: Path, records: list[dict]) -> tuple[dict[str, Table], str]:
    """The comparison tables by their number ("Table 2") and the markdown."""
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    tables = render_run(tmp_path, compare="badloss")
    beside = {t.title.split(" beside")[0]: t for t in tables if " beside " in t.title}
    return beside, (tmp_path / "leaderboard.md").read_text()


def rows(table: Table) -> dict[tuple[str, str], list[str]]:
    """{(defense, column): [ours, paper, Δ]}."""
    return {(defense, column): cells for defense, column, *cells in table.rows}


def test_the_loader_returns_the_transcribed_values() -> None:
    values = paper_table("badloss")
    cell = {(v.table, v.dataset, v.defense, v.attack, v.metric): v.value for v in values}
    assert len(cell) == len(values) == 6 * 6 * 2 + 7 * 12 * 2 + 7 * 8 * 2
    assert cell[1, "cifar10", "neural-cleanse", "patch", "auroc"] == 0.82
    assert cell[1, "cifar10", "abl", "wanet", "auroc"] == 0.00
    assert cell[1, "gtsrb", "badloss", "sinusoid", "auroc"] == 0.89
    assert cell[1, "gtsrb", "frequency", "blend-dimple", "auroc"] == 1.00
    assert not any(v.table == 1 and v.defense == "none" for v in values)
    assert cell[2, "cifar10", "none", "patch", "clean_acc"] == 84.09
    assert cell[2, "cifar10", "badloss", "sinusoid", "clean_acc"] == 55.12
    assert cell[2, "cifar10", "spectral", "blend-dimple", "asr"] == 2.14
    assert cell[2, "gtsrb", "frequency", "single-pixel", "clean_acc"] == 8.88
    assert cell[2, "gtsrb", "none", "wanet", "asr"] == 54.45
    defenses = ["none", "neural-cleanse", "activation-clustering", "spectral", "frequency", "abl", "badloss"]
    assert [cell[2, "gtsrb", d, "single-pixel", "asr"] for d in defenses] == [0.91, 0.32, 0.33, 0.78, 60.17, 3.32, 0.06]
    assert cell[3, "cifar10", "activation-clustering", "single-pixel", "asr"] == 24.04
    assert cell[3, "cifar10", "badloss", None, "avg_asr"] == 17.91
    assert cell[3, "gtsrb", "frequency", None, "clean_acc"] == 4.58
    assert cell[3, "gtsrb", "none", None, "avg_asr"] == 81.91


def test_one_attack_cells_beside_the_paper(tmp_path: Path) -> None:
    records = [
        record("none", 0, ["patch"], asr={"patch": 0.8}),
        record("none", 0, ["blend-random"], asr={"blend-random": 0.5}, asr_boosted={"blend-random": 0.9}),
        record("badloss", 0, ["patch"], auroc=0.9, clean_acc_after=0.95, asr_after={"patch": 0.02}),
        record("badloss", 1, ["patch"], auroc=0.8, clean_acc_after=0.93, asr_after={"patch": 0.04}),
        record("badloss", 0, ["blend-random"], auroc=0.99, clean_acc_after=0.9, asr_after={"blend-random": 0.1},
               asr_boosted={"blend-random": 0.95}, asr_boosted_after={"blend-random": 0.3}),
        record("badloss", 0, ["invisible"], auroc=0.7, clean_acc_after=0.9, asr_after={"invisible": 0.5}),
        record("spectral", 0, ["patch"], auroc=0.4, clean_acc_after=0.9, asr_after={"patch": 0.6}),
    ]
    beside, markdown = compare(tmp_path, records)
    detection = rows(beside["Table 1"])
    assert detection["badloss", "patch"][1:] == ["0.99", "-0.14"]  # the mean of two seeds, 0.85
    assert detection["badloss", "blend-random"] == ["0.99", "1.00", "-0.01"]
    assert detection["badloss", "invisible"] == ["0.70", "", ""]  # the paper has no such attack
    assert detection["spectral", "blend-random"] == ["", "0.15", ""]  # the run has no such cell
    assert ("No Defense", "patch") not in detection  # Table 1 has no No Defense row
    mitigation = rows(beside["Table 2"])
    assert mitigation["No Defense", "CA patch"] == ["90.00", "97.34", "-7.34"]
    assert mitigation["No Defense", "ASR patch"] == ["80.00", "81.64", "-1.64"]  # as trained: patch has no boost
    assert mitigation["No Defense", "ASR blend-random"] == ["90.00", "98.58", "-8.58"]  # boosted, not 50.00
    assert mitigation["badloss", "ASR blend-random"] == ["30.00", "0.19", "+29.81"]
    assert mitigation["badloss", "CA invisible"] == ["90.00", "", ""]
    assert "boosted ×2 at test time (asr_boosted) for blend-random; as trained (asr) for patch, invisible" in " ".join(
        beside["Table 2"].notes)
    assert "## Beside BaDLoss" in markdown and "ResNet-50, 100 epochs" in markdown
    assert "Ours: dataset synth-signs (family gtsrb), model small-cnn, profile fast, 2 seed(s)" in markdown


def test_a_cell_without_a_value_has_no_difference(tmp_path: Path) -> None:
    """Δ is left blank where our cell says why it has no value (a failed seed, a figure its records lack), not the
    mean of the seeds that have one."""
    records = [
        record("badloss", 0, ["patch"], auroc=0.9, clean_acc_after=0.95, asr_after={"patch": 0.02}),
        record("badloss", 1, ["patch"], status="error", error="boom"),
        record("spectral", 0, ["patch"], clean_acc_after=0.9, asr_after={"patch": 0.6}),  # made before AUROC was
    ]
    detection = rows(compare(tmp_path, records)[0]["Table 1"])
    assert detection["badloss", "patch"][0].startswith("error") and detection["badloss", "patch"][1:] == ["0.99", ""]
    assert detection["spectral", "patch"][0].startswith("n/a") and detection["spectral", "patch"][2] == ""


def test_multi_attack_cells_and_average_asr(tmp_path: Path) -> None:
    boosted = {"blend-random": 0.8, "blend-dimple": 0.8, "sinusoid": 0.8}
    six = [
        record("none", 0, SIX, asr={a: 0.5 for a in SIX}, asr_boosted=boosted),
        record("badloss", 0, SIX, auroc=0.9, auroc_per_attack={a: 0.9 for a in SIX}, clean_acc_after=0.8,
               asr_after={a: 0.1 for a in SIX}, asr_boosted=boosted, asr_boosted_after={a: 0.4 for a in boosted}),
    ]
    beside, _ = compare(tmp_path, six)
    multi = rows(beside["Table 3"])
    assert multi["badloss", "Clean Acc."] == ["80.00", "80.23", "-0.23"]
    assert multi["badloss", "ASR patch"] == ["10.00", "0.10", "+9.90"]
    assert multi["badloss", "ASR sinusoid"] == ["40.00", "55.91", "-15.91"]
    assert multi["No Defense", "Avg. ASR"] == ["65.00", "81.91", "-16.91"]  # (3 × 50 + 3 × 80) / 6
    two = [record("badloss", 0, ["patch", "wanet"], auroc=0.9, auroc_per_attack={"patch": 0.9, "wanet": 0.9},
                  clean_acc_after=0.8, asr_after={"patch": 0.1, "wanet": 0.3})]
    beside, _ = compare(tmp_path, two)
    assert rows(beside["Table 3"])["badloss", "Avg. ASR"] == ["20.00", "", ""]
    assert any("this run's multi-attack cell has patch, wanet: not compared" in n for n in beside["Table 3"].notes)


def test_a_run_with_no_attack_cells_and_two_multi_attack_sets_is_compared(tmp_path: Path) -> None:
    """The no-attack cells (``--attacks none``) have no column of Table 2; two multi-attack sets get a Table 3 each."""
    records = [
        record("badloss", 0, [], clean_acc_after=0.85, removed_frac=0.01),
        record("badloss", 0, ["patch"], auroc=0.9, clean_acc_after=0.8, asr_after={"patch": 0.1}),
        record("badloss", 0, SIX, auroc=0.9, auroc_per_attack={a: 0.9 for a in SIX}, clean_acc_after=0.8,
               asr_after={a: 0.1 for a in SIX}),
        record("badloss", 0, ["patch", "wanet"], auroc=0.9, auroc_per_attack={"patch": 0.9, "wanet": 0.9},
               clean_acc_after=0.7, asr_after={"patch": 0.2, "wanet": 0.3}),
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    tables = [t for t in render_run(tmp_path, compare="badloss") if " beside " in t.title]
    assert rows(next(t for t in tables if t.title.startswith("Table 2 ")))["badloss", "CA patch"][0] == "80.00"
    multi = {t.title.split(": ")[1].split(" clean")[0]: rows(t) for t in tables if t.title.startswith("Table 3 ")}
    assert multi[f"multi-attack ({'+'.join(SIX)})"]["badloss", "Clean Acc."] == ["80.00", "80.23", "-0.23"]
    assert multi["multi-attack (patch+wanet)"]["badloss", "Clean Acc."][0] == "70.00"


def test_the_dataset_family_picks_the_paper_block(tmp_path: Path) -> None:
    cifar = [record("badloss", 0, ["patch"], dataset="cifar10", family=None, auroc=0.5, clean_acc_after=0.9,
                    asr_after={"patch": 0.1})]
    beside, _ = compare(tmp_path, cifar)
    assert "cifar10" in beside["Table 1"].title
    assert rows(beside["Table 1"])["badloss", "patch"] == ["0.50", "0.98", "-0.48"]
    old = [record("badloss", 0, ["patch"], family=None, auroc=0.5, clean_acc_after=0.9, asr_after={"patch": 0.1})]
    (tmp_path / "results.jsonl").write_text(json.dumps(old[0]) + "\n")
    *_, nothing = render_run(tmp_path, compare="badloss")
    assert nothing.rows == [] and "nothing to compare" in nothing.title
    assert nothing.notes == ["1 of 1 records not compared with BaDLoss: dataset synth-signs (no family recorded) is "
                             "none of the paper's (cifar10, gtsrb)."]
    console = Console(file=io.StringIO(), width=100)
    print_tables([nothing], console)
    assert "no family recorded" in console.file.getvalue()


def test_the_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "results.jsonl").write_text(json.dumps(record("none", 0, ["patch"])) + "\n")
    assert main(["leaderboard", str(tmp_path), "--compare", "badloss"]) == 0
    assert "Table 2 beside BaDLoss's, gtsrb" in capsys.readouterr().out
    assert main(["leaderboard", str(tmp_path), "--compare", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["benchbd: error: unknown paper 'nope' to compare with; benchbd ships badloss"]
