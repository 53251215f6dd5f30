"""The leaderboard from a results file: means ± std over seeds, footnoted n/a cells, escaped plugin text."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

from rich.console import Console

from benchbd.leaderboard import print_tables, render_run


def record(defense: str, seed: int, attacks: list[str], **fields) -> dict:
    unit = "none" if defense == "none" else "example"
    base = {"dataset": "synth-signs", "model": "small-cnn", "profile": "fast", "mode": "multi" if len(attacks) > 1 else "single",
            "attacks": attacks, "defense": defense, "unit": unit, "seed": seed, "status": "ok", "error": None,
            "clean_acc": 0.9, "asr": {a: 0.95 for a in attacks}, "config_hash": f"{defense}{seed}{attacks}"}
    return {**base, **fields}


def render(tmp_path: Path, records: list[dict]) -> tuple[list, str]:
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    tables = render_run(tmp_path)
    return tables, (tmp_path / "leaderboard.md").read_text()


def test_mean_and_std_over_seeds(tmp_path: Path) -> None:
    records = [
        record("none", 0, ["patch"]),
        record("none", 1, ["patch"]),
        record("spectral", 0, ["patch"], auroc=0.6, clean_acc_after=0.8, asr_after={"patch": 0.5}),
        record("spectral", 1, ["patch"], auroc=0.8, clean_acc_after=0.9, asr_after={"patch": 0.3}),
    ]
    _, markdown = render(tmp_path, records)
    assert "0.70 ± 0.14" in markdown  # AUROC mean and sample std
    assert "85.00 ± 7.07" in markdown  # clean accuracy after, in %
    assert "40.00 ± 14.14" in markdown


def test_not_applicable_cells_are_explained(tmp_path: Path) -> None:
    records = [
        record("none", 0, ["blind"]),
        record("spectral", 0, ["blind"], status="not_applicable", error="no poisoned examples"),
    ]
    _, markdown = render(tmp_path, records)
    assert "n/a (1)" in markdown
    assert "(1) not applicable: no poisoned examples" in markdown


def test_multi_attack_table_has_average_asr(tmp_path: Path) -> None:
    records = [
        record("none", 0, ["patch", "blend"], asr={"patch": 0.9, "blend": 0.7}),
        record("spectral", 0, ["patch", "blend"], auroc=0.7, clean_acc_after=0.85, asr_after={"patch": 0.1, "blend": 0.3},
               auroc_per_attack={"patch": 0.9, "blend": 0.5}),
    ]
    tables, markdown = render(tmp_path, records)
    detection = next(t for t in tables if t.title.startswith("Table 3a"))
    assert detection.columns == ["Defense", "All", "patch", "blend"]
    assert detection.rows == [["spectral", "0.70", "0.90", "0.50"]]
    multi = next(t for t in tables if t.title.startswith("Table 3:"))
    assert multi.columns == ["Defense", "Clean Acc.", "ASR patch", "ASR blend", "Avg. ASR"]
    assert multi.rows[0] == ["No Defense", "90.00", "90.00", "70.00", "80.00"]
    assert multi.rows[1] == ["spectral", "85.00", "10.00", "30.00", "20.00"]


def test_one_plugin_under_two_parameter_sets_gets_two_rows_not_a_mean(tmp_path: Path) -> None:
    """A run directory re-used with other -P values holds two experiments; they must not be averaged as seeds."""
    def with_params(defense: str, defense_params: dict, ratio: float, **fields) -> dict:
        params = {"attacks": {"patch": {"ratio": ratio, "target": None}}, "defense": defense_params}
        return record(defense, 0, ["patch"], params=params, config_hash=json.dumps([defense, params]), **fields)

    records = [
        with_params("none", {}, 0.02),
        with_params("none", {}, 0.1, asr={"patch": 0.99}),
        with_params("spectral", {"eps": 1.5, "k": 1}, 0.02, auroc=0.6, clean_acc_after=0.8, asr_after={"patch": 0.5}),
        with_params("spectral", {"eps": 3.0, "k": 1}, 0.02, auroc=0.8, clean_acc_after=0.9, asr_after={"patch": 0.3}),
    ]
    tables, _ = render(tmp_path, records)
    detection = next(t for t in tables if t.title.startswith("Table 1"))
    assert detection.columns == ["Defense", "patch (ratio=0.02)", "patch (ratio=0.1)"]
    assert detection.rows == [["spectral (eps=1.5)", "0.60", "–"], ["spectral (eps=3.0)", "0.80", "–"]]
    mitigation = next(t for t in tables if t.title.startswith("Table 2"))
    assert mitigation.rows[0] == ["No Defense", "90.00", "90.00", "95.00", "99.00"]


def test_plugin_text_is_escaped(tmp_path: Path) -> None:
    records = [record("none", 0, ["a|b<script>"])]
    _, markdown = render(tmp_path, records)
    assert "a\\|b\\<script\\>" in markdown and "<script>" not in markdown


def test_heatmaps_are_written_and_linked(tmp_path: Path) -> None:
    records = [record("none", 0, ["patch"]), record("spectral", 0, ["patch"], auroc=0.6, clean_acc_after=0.8, asr_after={"patch": 0.5})]
    _, markdown = render(tmp_path, records)
    for name in ("auroc", "asr_after"):
        png = tmp_path / f"heatmap-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png.name})" in markdown


def test_header_names_the_distributions_the_plugins_came_from(tmp_path: Path) -> None:
    builtin = "benchbd 0.1.0"
    records = [
        record("none", 0, ["patch"], plugins={"attacks": {"patch": builtin}, "defense": builtin, "model": builtin}),
        record("none", 0, ["stripe"], plugins={"attacks": {"stripe": "acme-stripe 2.0"}, "defense": builtin, "model": builtin}),
        record("none", 0, ["dot"]),  # written before records carried their plugins' distributions
    ]
    _, markdown = render(tmp_path, records)
    assert "Plugins from acme-stripe 2.0, benchbd 0.1.0." in markdown
    _, markdown = render(tmp_path, records[2:])
    assert "Plugins from" not in markdown


def test_a_table_too_wide_for_the_terminal_is_printed_transposed(tmp_path: Path) -> None:
    attacks = [f"attack-number-{i}" for i in range(12)]
    tables, _ = render(tmp_path, [record("none", 0, [a], asr={a: 0.5}) for a in attacks])
    out = io.StringIO()
    print_tables(tables, Console(file=out, width=80))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any("ASR attack-number-11" in line and "50.00" in line for line in lines)  # one line per column


def test_heatmap_makes_room_for_long_attack_labels(tmp_path: Path) -> None:
    attacks = [f"blend-random (ratio=0.0{i}, alpha=0.075)" for i in range(1, 10)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when the labels do not fit the figure
        render(tmp_path, [record("none", 0, [a], asr={a: 0.5}) for a in attacks])
    assert (tmp_path / "heatmap-asr_after.png").is_file()
