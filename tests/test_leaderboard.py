"""The leaderboard from a results file: means ± std over seeds, footnoted n/a cells, escaped plugin text."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from benchbd.errors import BenchbdError
from benchbd.leaderboard.cells import OLD_ASR, OLD_DETECTION
from benchbd.leaderboard.heatmaps import write_heatmaps
from benchbd.leaderboard.labels import label_configurations
from benchbd.leaderboard.render import print_tables, render_run


def record(defense: str, seed: int, attacks: list[str], **fields) -> dict:
    """A record as the harness writes it since issue 15 (with ``code`` digests); pass ``code=None`` for an old one."""
    unit = "none" if defense == "none" else "example"
    code = {"benchbd": "b1", "dataset": "s1", "model": "m1", "attacks": {a: "a1" for a in attacks}, "defense": "d1"}
    base = {"dataset": "synth-signs", "model": "small-cnn", "profile": "fast", "mode": "multi" if len(attacks) > 1 else "single",
            "attacks": attacks, "defense": defense, "unit": unit, "seed": seed, "status": "ok", "error": None,
            "clean_acc": 0.9, "asr": {a: 0.95 for a in attacks}, "config_hash": f"{defense}{seed}{attacks}", "code": code}
    return {key: value for key, value in {**base, **fields}.items() if value is not None}


def render(tmp_path: Path, records: list[dict]) -> tuple[list, str]:
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    tables = render_run(tmp_path)
    return tables, (tmp_path / "leaderboard.md").read_text()


def test_mean_and_confidence_interval_over_seeds(tmp_path: Path) -> None:
    records = [
        record("none", 0, ["patch"]),
        record("none", 1, ["patch"]),
        record("spectral", 0, ["patch"], auroc=0.6, clean_acc_after=0.8, asr_after={"patch": 0.5}),
        record("spectral", 1, ["patch"], auroc=0.8, clean_acc_after=0.9, asr_after={"patch": 0.3}),
    ]
    _, markdown = render(tmp_path, records)
    # The mean ± the half-width of the 95% t-interval: t(0.975, 1) = 12.706 times the sample std over √2.
    assert "0.70 ± 1.27 (n=2)" in markdown  # AUROC
    assert "85.00 ± 63.53 (n=2)" in markdown  # clean accuracy after, in %
    assert "40.00 ± 127.06 (n=2)" in markdown


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


def test_two_multi_attack_sets_are_two_experiments_not_two_seeds(tmp_path: Path) -> None:
    """A run directory re-used with other --multi-attacks holds two sets: each gets its own tables."""
    three = ["patch", "wanet", "blend"]
    records = [
        record("spectral", 0, three, auroc=0.7, clean_acc_after=0.8, asr_after={a: 0.1 for a in three},
               auroc_per_attack={a: 0.7 for a in three}),
        record("spectral", 0, ["patch", "wanet"], auroc=0.9, clean_acc_after=0.9, asr_after={"patch": 0.3, "wanet": 0.5},
               auroc_per_attack={"patch": 0.9, "wanet": 0.9}),
    ]
    tables, _ = render(tmp_path, records)
    asr = {t.title.split(" clean")[0]: t for t in tables if t.title.startswith("Table 3:")}
    assert list(asr) == ["Table 3: multi-attack (patch+wanet+blend)", "Table 3: multi-attack (patch+wanet)"]
    assert asr["Table 3: multi-attack (patch+wanet)"].rows == [["spectral", "90.00", "30.00", "50.00", "40.00"]]
    assert asr["Table 3: multi-attack (patch+wanet+blend)"].rows == [["spectral", "80.00", "10.00", "10.00", "10.00", "10.00"]]
    detection = [t for t in tables if t.title.startswith("Table 3a")]
    assert [t.rows for t in detection] == [[["spectral", "0.70", "0.70", "0.70", "0.70"]], [["spectral", "0.90", "0.90", "0.90"]]]


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


def test_a_variant_label_rounds_floats_unless_that_would_merge_two_variants() -> None:
    """8/255 reads 0.03137 in a label; two values equal to 4 digits keep all of theirs, or their rows would merge."""
    def with_eps(eps: float) -> dict:
        params = {"attacks": {"patch": {"ratio": 0.02}}, "defense": {"train_eps": eps, "runs": 1}}
        return record("aegis", 0, ["patch"], params=params)

    rounded = label_configurations([with_eps(8 / 255), with_eps(0.5)])
    assert [r["defense"] for r in rounded] == ["aegis (train_eps=0.03137)", "aegis (train_eps=0.5)"]
    close = label_configurations([with_eps(0.1), with_eps(0.100001)])
    assert [r["defense"] for r in close] == ["aegis (train_eps=0.1)", "aegis (train_eps=0.100001)"]


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


def test_a_figure_older_records_lack_is_said_to_be_not_recorded(tmp_path: Path) -> None:
    """Records made before benchbd measured the TPR at a fixed FPR have no such field: not "undefined"."""
    records = [record("none", 0, ["patch"]), record("spectral", 0, ["patch"], auroc=0.6, clean_acc_after=0.8, asr_after={"patch": 0.5})]
    tables, _ = render(tmp_path, records)
    table = next(t for t in tables if t.title.startswith("Table 1b"))
    assert table.rows[0][1].startswith("n/a") and "not recorded" in table.notes[0] and "'tpr_at_fpr'" in table.notes[0]
    records[1]["tpr_at_fpr"] = None  # measured, but undefined for this cell
    tables, _ = render(tmp_path, records)
    assert "undefined" in next(t for t in tables if t.title.startswith("Table 1b")).notes[0]
    # DER beside a record that has it: the other seed's record predates it
    records += [record("spectral", 1, ["patch"], auroc=0.7, clean_acc_after=0.8, asr_after={"patch": 0.5}, der={"patch": 0.7})]
    tables, _ = render(tmp_path, records)
    table = next(t for t in tables if t.title.startswith("Table 2c"))
    assert table.rows[1][1].startswith("n/a") and any("did not measure 'der'" in note for note in table.notes)


def test_rows_and_columns_follow_the_invocations_not_the_order_cells_finished(tmp_path: Path) -> None:
    """A Ray run appends records as its tasks finish; the tables read the blocks' order from invocations.jsonl."""
    def cell(defense: str, attack: str) -> dict:
        fields = {} if defense == "none" else {"auroc": 0.5, "clean_acc_after": 0.8, "asr_after": {attack: 0.5}}
        return record(defense, 0, [attack], **fields)

    planned = [cell(d, a) for a in ("wanet", "patch") for d in ("none", "badloss", "spectral")]
    finished = [planned[i] for i in (5, 0, 4, 2, 3, 1)]  # the order of the lines, as a Ray run may append them
    block = {"attacks": ["wanet", "patch"], "defenses": ["none", "badloss", "spectral"], "mode": "single"}
    (tmp_path / "invocations.jsonl").write_text(json.dumps({"config": {"blocks": [block]}}) + "\n")
    tables, _ = render(tmp_path, finished)
    assert table(tables, "Table 1:").columns == ["Defense", "wanet", "patch"]
    assert [row[0] for row in table(tables, "Table 1:").rows] == ["badloss", "spectral"]
    (tmp_path / "invocations.jsonl").unlink()  # without the invocations: the order of the lines
    tables, _ = render(tmp_path, finished)
    assert table(tables, "Table 1:").columns == ["Defense", "patch", "wanet"]
    assert [row[0] for row in table(tables, "Table 1:").rows] == ["spectral", "badloss"]


def test_the_auroc_heatmap_is_over_training_examples_only(tmp_path: Path) -> None:
    """A model defense's AUROC is over a handful of models (Table 4), not over training examples: not in the map."""
    model_level = record("neural-cleanse-model", 0, ["patch"], unit="model", auroc=1.0)
    assert "auroc" not in write_heatmaps([model_level], tmp_path)
    example_level = record("spectral", 0, ["patch"], auroc=0.6, clean_acc_after=0.8, asr_after={"patch": 0.5})
    assert "auroc" in write_heatmaps([model_level, example_level], tmp_path)


def test_a_heatmap_cell_is_the_tables_cell(tmp_path: Path) -> None:
    """A failed seed leaves the cell blank, as Table 1 says "error" there, not the other seeds' mean; two
    baselines are two rows, as in the tables."""
    from benchbd.leaderboard.heatmaps import _matrix

    records = [
        record("spectral", 0, ["patch"], auroc=0.9, clean_acc_after=0.8, asr_after={"patch": 0.5}),
        record("spectral", 1, ["patch"], status="error", error="boom"),
        record("activation-clustering", 0, ["patch"], auroc=0.7, clean_acc_after=0.8, asr_after={"patch": 0.2}),
        record("none", 0, ["patch"], asr={"patch": 0.9}),
        record("acme-none", 0, ["patch"], unit="none", asr={"patch": 0.1}),
    ]
    auroc = _matrix(records, "auroc")
    assert np.isnan(auroc.loc["spectral", "patch"]) and auroc.loc["activation-clustering", "patch"] == 0.7
    asr = _matrix(records, "asr_after")
    assert asr.loc["No Defense (none)", "patch"] == 90 and asr.loc["No Defense (acme-none)", "patch"] == 10
    assert np.isnan(asr.loc["spectral", "patch"])
    assert list(asr.index) == ["No Defense (none)", "No Defense (acme-none)", "spectral", "activation-clustering"]


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


def table(tables: list, prefix: str):
    return next(t for t in tables if t.title.startswith(prefix))


def test_the_asr_tables_name_the_targets_and_which_differ_alone_and_in_company(tmp_path: Path) -> None:
    """Each attack takes the lowest free class: alone every one class 0, in a set its place. A reader comparing
    Table 2 with Table 3 is told which attacks had another target alone."""
    records = [
        record("none", 0, ["patch"], targets={"patch": 0}),
        record("none", 0, ["wanet"], targets={"wanet": 0}),
        record("none", 0, ["patch", "wanet"], targets={"patch": 0, "wanet": 1}),
        record("none", 0, ["wanet", "patch"], targets={"wanet": 0, "patch": 1}),
    ]
    tables, markdown = render(tmp_path, records)
    assert table(tables, "Table 2:").notes == ["Target classes: patch 0, wanet 0."]
    first, second = (t for t in tables if t.title.startswith("Table 3:"))
    assert first.notes == ["Target classes: patch 0, wanet 1. Alone (Table 2) they differ: wanet 0."]
    assert second.notes == ["Target classes: wanet 0, patch 1. Alone (Table 2) they differ: patch 0."]
    assert "Alone (Table 2) they differ: wanet 0." in markdown


def test_asr_tables_say_which_asr_and_the_boosted_one_has_its_own(tmp_path: Path) -> None:
    """Issue 15, item 5: Tables 2 and 3 show the trigger as trained; 2b and 3b the boost, for the attacks that have one."""
    one = ["patch", "blend-random"]
    records = [
        *(record("none", 0, [a], asr={a: 0.9}, asr_boosted={"blend-random": 0.99} if a == "blend-random" else None) for a in one),
        record("spectral", 0, ["patch"], auroc=0.6, removed_frac=0.1, clean_acc_after=0.8, asr_after={"patch": 0.5}),
        record("spectral", 0, ["blend-random"], auroc=0.6, removed_frac=0.1, clean_acc_after=0.8, asr_after={"blend-random": 0.3},
               asr_boosted={"blend-random": 0.99}, asr_boosted_after={"blend-random": 0.7}),
        record("none", 0, one, asr={"patch": 0.9, "blend-random": 0.5}, asr_boosted={"blend-random": 0.8}),
        record("spectral", 0, one, auroc=0.7, removed_frac=0.1, auroc_per_attack={"patch": 0.9, "blend-random": 0.5},
               clean_acc_after=0.85, asr_after={"patch": 0.1, "blend-random": 0.3},
               asr_boosted={"blend-random": 0.8}, asr_boosted_after={"blend-random": 0.6}),
    ]
    tables, markdown = render(tmp_path, records)
    for prefix in ("Table 2:", "Table 3:"):
        assert "ASR with the trigger as trained (BaDLoss section 5)" in table(tables, prefix).title
    single, multi = table(tables, "Table 2:"), table(tables, "Table 3:")
    assert single.rows == [["No Defense", "90.00", "90.00", "90.00", "90.00"], ["spectral", "80.00", "80.00", "50.00", "30.00"]]
    assert multi.rows[1] == ["spectral", "85.00", "10.00", "30.00", "20.00"] and not single.notes and not multi.notes
    boosted = table(tables, "Table 2b")
    assert "boosted ×2 at test time, as BaDLoss's reference code" in boosted.title
    assert boosted.columns == ["Defense", "ASR blend-random"]
    assert boosted.rows == [["No Defense", "99.00"], ["spectral", "70.00"]]
    assert table(tables, "Table 3b").rows == [["No Defense", "80.00"], ["spectral", "60.00"]]
    assert "(trigger as trained)" not in markdown and "made before benchbd recorded code digests" not in markdown


def test_without_a_boosted_asr_there_is_no_boosted_table(tmp_path: Path) -> None:
    tables, _ = render(tmp_path, [record("none", 0, ["patch"])])
    assert [t.title.split(":")[0] for t in tables] == ["Table 2"]


def test_boosted_asr_is_labelled_per_parameter_set(tmp_path: Path) -> None:
    def with_ratio(ratio: float, boosted: float) -> dict:
        params = {"attacks": {"blend-random": {"ratio": ratio}}, "defense": {}}
        return record("none", 0, ["blend-random"], params=params, config_hash=str(ratio), asr_boosted={"blend-random": boosted})

    tables, _ = render(tmp_path, [with_ratio(0.01, 0.5), with_ratio(0.05, 0.9)])
    boosted = table(tables, "Table 2b")
    assert boosted.columns == ["Defense", "ASR blend-random (ratio=0.01)", "ASR blend-random (ratio=0.05)"]
    assert boosted.rows == [["No Defense", "50.00", "90.00"]]


def test_der_and_robust_accuracy_are_labelled_per_parameter_set(tmp_path: Path) -> None:
    def with_ratio(defense: str, ratio: float, **fields) -> dict:
        params = {"attacks": {"patch": {"ratio": ratio}}, "defense": {}}
        return record(defense, 0, ["patch"], params=params, config_hash=f"{defense}{ratio}", **fields)

    records = [
        with_ratio("none", 0.01, robust_acc={"patch": 0.1}), with_ratio("none", 0.05, robust_acc={"patch": 0.2}),
        with_ratio("spectral", 0.01, auroc=0.9, der={"patch": 0.6}, robust_acc_after={"patch": 0.5}, clean_acc_after=0.9, asr_after={"patch": 0.1}),
        with_ratio("spectral", 0.05, auroc=0.9, der={"patch": 0.7}, robust_acc_after={"patch": 0.6}, clean_acc_after=0.9, asr_after={"patch": 0.1}),
    ]
    tables, _ = render(tmp_path, records)
    effectiveness = table(tables, "Table 2c")
    assert effectiveness.rows == [["No Defense", "–", "–", "10.00", "20.00"], ["spectral", "0.60", "0.70", "50.00", "60.00"]]


def test_old_records_say_their_asr_is_the_boosted_one(tmp_path: Path) -> None:
    """Records without code digests come from before issue 15: their ``asr`` was measured boosted."""
    old = [record("none", 0, ["blend-random"], code=None), record("none", 0, ["patch", "blend-random"], code=None)]
    tables, markdown = render(tmp_path, old)
    assert table(tables, "Table 2:").rows == [["No Defense", "90.00", "95.00 (1)"]]
    assert table(tables, "Table 2:").notes == [f"(1) {OLD_ASR}"]
    assert table(tables, "Table 3:").rows == [["No Defense", "90.00", "95.00 (1)", "95.00 (1)", "95.00 (1)"]]
    assert ("These records were made before benchbd recorded code digests (old protocol: ASR boosted ×2 at test time "
            "for the blends and sinusoid).") in markdown
    defended = record("spectral", 0, ["patch"], code=None, auroc=0.6, removed_frac=0.1, clean_acc_after=0.8, asr_after={"patch": 0.5})
    tables, markdown = render(tmp_path, [record("none", 0, ["patch"]), defended])
    assert table(tables, "Table 2:").rows == [["No Defense", "90.00", "95.00"], ["spectral", "80.00", "50.00 (1)"]]
    assert table(tables, "Table 1:").rows == [["spectral", "0.60 (1)"]] and table(tables, "Table 1:").notes == [f"(1) {OLD_DETECTION}"]
    assert ("1 of 2 records were made before benchbd recorded code digests (old protocol: detection AUROC, TPR and FPR "
            "counted the defender's trusted clean examples; ASR boosted ×2 at test time for the blends and sinusoid).") in markdown


def test_a_defense_that_removed_nothing_is_footnoted(tmp_path: Path) -> None:
    """Issue 15, item 7: a row equal to No Defense's says why, with the gate the defense recorded."""
    def filtered(defense: str, seed: int, removed: float, **fields) -> dict:
        return record(defense, seed, ["patch"], auroc=0.5, removed_frac=removed, clean_acc_after=0.9, asr_after={"patch": 0.95}, **fields)

    gate = {"gate": "no class above anomaly index 2", "anomaly_index": [1.2, 0.3]}
    records = [
        record("none", 0, ["patch"]),
        filtered("neural-cleanse", 0, 0.0, details=gate),
        filtered("spectral", 0, 0.0),
        filtered("abl", 0, 0.0),
        filtered("abl", 1, 0.05),
    ]
    tables, markdown = render(tmp_path, records)
    mitigation = table(tables, "Table 2:")
    assert mitigation.rows == [
        ["No Defense", "90.00", "95.00"],
        ["neural-cleanse", "90.00 (1)", "95.00 (1)"],
        ["spectral", "90.00 (2)", "95.00 (2)"],
        ["abl", "90.00 ± 0.00 (n=2) (3)", "95.00 ± 0.00 (n=2) (3)"],
    ]
    assert mitigation.notes == [
        "(1) flagged nothing: no class above anomaly index 2",
        "(2) flagged nothing",
        "(3) flagged nothing in 1 of 2 seeds",
    ]
    assert table(tables, "Table 1").rows[0] == ["neural-cleanse", "0.50 (1)"]
    assert "flagged nothing: no class above anomaly index 2" in markdown


def test_a_third_party_baseline_is_the_no_defense_row(tmp_path: Path) -> None:
    """Issue 15, item 8: the row is keyed on the unit ``none``, not on benchbd's name for it."""
    records = [
        record("acme-baseline", 0, ["patch"], unit="none", asr={"patch": 0.8}),
        record("spectral", 0, ["patch"], auroc=0.6, removed_frac=0.1, clean_acc_after=0.8, asr_after={"patch": 0.5}),
    ]
    tables, _ = render(tmp_path, records)
    assert table(tables, "Table 2:").rows == [["No Defense", "90.00", "80.00"], ["spectral", "80.00", "50.00"]]
    tables, _ = render(tmp_path, [*records, record("none", 0, ["patch"])])
    assert [row[0] for row in table(tables, "Table 2:").rows] == ["No Defense (acme-baseline)", "No Defense (none)", "spectral"]


def test_header_notes_records_made_from_several_versions_of_a_plugin(tmp_path: Path) -> None:
    """Issue 15, item 4: one table's records from different code say so."""
    def with_code(seed: int, benchbd: str, patch: str) -> dict:
        code = {"benchbd": benchbd, "dataset": "s1", "model": "m1", "attacks": {"patch": patch}, "defense": "d1"}
        return record("none", seed, ["patch"], code=code)

    _, markdown = render(tmp_path, [with_code(0, "b1", "p1"), with_code(1, "b2", "p2"), with_code(2, "b2", "p3")])
    assert "Records of benchbd come from 2 versions of its code." in markdown
    assert "Records of attack patch come from 3 versions of its code." in markdown
    assert markdown.count("versions of its code") == 2
    _, markdown = render(tmp_path, [with_code(0, "b1", "p1"), with_code(1, "b1", "p1")])
    assert "versions of its code" not in markdown


def test_an_adaptive_attacker_is_a_threat_model_not_a_variant_of_the_defense(tmp_path: Path) -> None:
    def server_cell(seed: int, **simulation) -> dict:
        params = {"attacks": {"patch": {}}, "defense": {}, "simulation": {"servers": 4, "backdoor_lr_ratio": 1.0, **simulation}}
        return record("rttd", seed, ["patch"], unit="training-run", params=params, tpr=1.0, fpr=0.0, auroc=1.0, overhead_frac=0.25)

    tables, _ = render(tmp_path, [server_cell(0), server_cell(0, backdoor_lr_ratio=0.1)])
    rows = table(tables, "Table 5").rows
    assert [row[:2] for row in rows] == [["rttd", "patch"], ["rttd", "patch (backdoor_lr_ratio=0.1)"]]


def test_no_attack_der_and_tpr_at_fixed_fpr_have_their_tables(tmp_path: Path) -> None:
    clean = [record("none", 0, []), record("spectral", 0, [], removed_frac=0.15, clean_acc_after=0.88, tpr=None, fpr=0.15)]
    attacked = [
        record("none", 0, ["patch"], robust_acc={"patch": 0.04}),
        record("spectral", 0, ["patch"], auroc=0.9, tpr_at_fpr={"0.01": 0.3, "0.05": 0.7}, clean_acc_after=0.85,
               asr_after={"patch": 0.1}, robust_acc_after={"patch": 0.8}, der={"patch": 0.9}, removed_frac=0.15),
    ]
    tables, _ = render(tmp_path, clean + attacked)
    assert table(tables, "Table 0").rows == [["No Defense", "–", "90.00", "–"], ["spectral", "15.00", "88.00", "2.00"]]
    assert table(tables, "Table 1:").columns == ["Defense", "patch"]  # the clean cells are not an attack column
    assert table(tables, "Table 1b").rows == [["spectral", "30.00", "70.00"]]
    assert table(tables, "Table 2c").rows == [["No Defense", "–", "4.00"], ["spectral", "0.90", "80.00"]]


def test_a_run_of_training_run_defenses_has_no_empty_mitigation_tables(tmp_path: Path) -> None:
    rttd = record("rttd", 0, ["patch"], unit="training-run", servers=4, malicious_servers=1, tpr=1.0, fpr=0.0, auroc=1.0,
                  overhead_frac=0.4)
    tables, markdown = render(tmp_path, [rttd])
    assert [t.title.split(":")[0] for t in tables] == ["Table 5"]
    assert "Table 2" not in markdown


def test_table_4_shows_the_model_the_defense_judged(tmp_path: Path) -> None:
    """AEGIS judges robust models it had trained: their clean accuracy and ASR, not the cell's standard model's."""
    judged = {"clean_acc": 0.91, "asr": {"patch": 0.02}, "robust_acc": {"patch": 0.9}}
    aegis = record("aegis", 0, ["patch"], unit="model", tpr=0.0, fpr=0.75, auroc=0.12, target_found={"patch": False},
                   class_fpr=0.06, model_scores={"backdoored": 0.1, "clean": [0.3, 0.2, 0.0, 0.4]}, judged_model=judged)
    tables, _ = render(tmp_path, [aegis])
    (row,) = table(tables, "Table 4").rows
    assert row[-2:] == ["91.00", "2.00"]  # the cell's own model: 90.00 and 95.00
    assert "judges its backdoored model and 4 clean models" in table(tables, "Table 4").notes[-1]


def test_table_4_reads_the_tpr_at_a_fixed_fpr_off_the_model_scores(tmp_path: Path) -> None:
    """Records before 5faef96 hold the TPR at no clean model flagged as "TPR at 1% FPR"; the column recomputes it
    from the judged models' scores: n/a over 4 clean models, the TPR over 100; a clean model not judged is left
    out (99 judged cannot measure 1%); a cell without an attack has no backdoored model to find."""
    def model_record(attacks: list[str], clean: list[float | None], stored: float) -> dict:
        return record("neural-cleanse-model", 0, attacks, unit="model", tpr=1.0, fpr=0.0, auroc=1.0, class_fpr=0.0,
                      target_found={a: True for a in attacks}, tpr_at_fpr={"0.01": stored, "0.05": stored},
                      model_scores={"backdoored": 3.0, "clean": clean})
    hundred = [*(i / 50 for i in range(98)), 4.0, 5.0]
    records = [model_record(["patch"], [1.0, 1.5, None, 0.5], 1.0), model_record(["blend-random"], hundred, 1.0),
               model_record(["wanet"], [*hundred[1:], None], 1.0), model_record([], [1.0, 0.5], 0.0)]
    tables, markdown = render(tmp_path, records)
    header = table(tables, "Table 4").columns
    rows = {row[1]: dict(zip(header, row)) for row in table(tables, "Table 4").rows}
    at = {attacks: (row["TPR @1% FPR"], row["TPR @5% FPR"]) for attacks, row in rows.items()}
    assert at["patch"][0].startswith("n/a") and at["patch"][1].startswith("n/a")
    assert at["blend-random"] == ("0.00", "100.00")  # two clean models above it: 1 of 100 flagged is the limit at 1%
    assert at["wanet"][0].startswith("n/a") and at["wanet"][1] == "100.00"
    assert at["No attack"][0].startswith("n/a") and at["No attack"][1].startswith("n/a")
    assert "undefined: too few clean models judged to measure that FPR (100 for 1%, 20 for 5%)" in markdown

def test_the_header_names_a_demo_scale(tmp_path: Path) -> None:
    _, synthetic = render(tmp_path, [record("none", 0, ["patch"])])
    assert "Demo scale: synth-signs is benchbd's generated stand-in for GTSRB" in synthetic
    assert "the CPU demo's" not in synthetic
    _, demo = render(tmp_path, [record("none", 0, ["patch"], dataset="synth-signs:classes=10")])
    assert "synth-signs:classes=10 is the CPU demo's" in demo
    _, real = render(tmp_path, [record("none", 0, ["patch"], dataset="gtsrb")])
    assert "Demo scale" not in real


def environment(capability: str, commit: str = "57de76c" + "0" * 33, threads: int = 2) -> dict:
    return {"device": "cpu", "device_name": "AMD EPYC", "cpu_capability": capability, "torch_threads": threads,
            "python": "3.11.7", "packages": {"benchbd": "0.1.0", "torch": "2.14.1"}, "git_commit": commit}


def test_the_header_says_where_the_records_were_computed(tmp_path: Path) -> None:
    """One environment: named. Several: each with its count, and a line when CPU records come from several
    instruction sets or thread counts (float32 training differs between them). Records without one: counted."""
    avx512, avx2 = environment("AVX512"), environment("AVX2")
    _, one = render(tmp_path, [record("none", 0, ["patch"], environment=avx512),
                               record("none", 1, ["patch"], environment=avx512)])
    assert ("Computed on AMD EPYC (AVX512, 2 torch threads), torch 2.14.1, Python 3.11.7, benchbd commit 57de76c."
            in one)
    assert "instruction set" not in one and "environments" not in one
    _, mixed = render(tmp_path, [record("none", 0, ["patch"], environment=avx512),
                                 record("none", 1, ["patch"], environment=avx2),
                                 record("none", 2, ["patch"], environment=avx2), record("none", 3, ["patch"])])
    assert "Computed in 2 environments: AMD EPYC (AVX2, 2 torch threads)" in mixed and "(2 records); AMD EPYC (AVX512" in mixed
    assert "CPU records come from 2 settings of instruction set and torch threads (AVX2 on 2 threads, AVX512 on 2 threads)" in mixed
    assert "1 of 4 records were written before benchbd recorded where a cell was computed" in mixed
    _, two_commits = render(tmp_path, [record("none", 0, ["patch"], environment=avx2),
                                       record("none", 1, ["patch"], environment=environment("AVX2", "abc1234+modified"))])
    assert "benchbd commit abc1234\\+modified (1 record)" in two_commits and "instruction set" not in two_commits
    _, threads = render(tmp_path, [record("none", 0, ["patch"], environment=avx2),
                                   record("none", 1, ["patch"], environment=environment("AVX2", threads=1))])
    assert "2 settings of instruction set and torch threads (AVX2 on 1 threads, AVX2 on 2 threads)" in threads
    partial = {"device": "cpu", "device_name": "AMD EPYC", "git_commit": None, "packages": {"benchbd": "0.1.0"}}
    _, sparse = render(tmp_path, [record("none", 0, ["patch"], environment=partial), record("none", 1, ["patch"])])
    assert "Computed in 1 environment: AMD EPYC (?, ? torch threads), torch ?, Python ?, benchbd 0.1.0 (1 record)." in sparse
    assert "1 of 2 records were written before benchbd recorded" in sparse


def test_a_cell_computed_again_shows_its_latest_record_not_two_seeds(tmp_path: Path) -> None:
    """A resume after a change of code or settings appends a second record of the same seed and parameters:
    the table shows the later one, not the mean of both as n=2, and the header says one was left out."""
    params = {"attacks": {"patch": {"ratio": 0.02}}, "defense": {}}
    first = record("spectral", 0, ["patch"], auroc=0.6, clean_acc_after=0.8, asr_after={"patch": 0.5}, params=params)
    again = record("spectral", 0, ["patch"], auroc=0.7, clean_acc_after=0.8, asr_after={"patch": 0.5}, params=params,
                   code={**first["code"], "defense": "d2"})
    seed_1 = record("spectral", 1, ["patch"], auroc=0.9, clean_acc_after=0.8, asr_after={"patch": 0.5}, params=params)
    baseline = record("none", 0, ["patch"], params=params)
    _, markdown = render(tmp_path, [baseline, first, again])
    assert "| spectral | 0.70 " in markdown.replace("  ", " ").replace("  ", " ") and "n=2" not in markdown
    assert "1 earlier record(s) of a cell computed again here" in markdown
    _, markdown = render(tmp_path, [baseline, first, again, seed_1])
    assert "0.80 ± 1.27 (n=2)" in markdown  # the latest of seed 0 (0.7) and seed 1 (0.9)
    _, markdown = render(tmp_path, [baseline, first, seed_1])
    assert "computed again" not in markdown


def test_the_record_that_finished_last_stands_whatever_order_the_files_were_joined_in(tmp_path: Path) -> None:
    """Seeds split over machines, one computed on both: the later computation is the cell, not the later line."""
    earlier = record("spectral", 0, ["patch"], auroc=0.6, clean_acc_after=0.8, asr_after={"patch": 0.5},
                     finished="2026-12-07T10:00:00.000+00:00")
    later = record("spectral", 0, ["patch"], auroc=0.7, clean_acc_after=0.8, asr_after={"patch": 0.5},
                   finished="2026-12-07T11:00:00.000+00:00")
    for order in ([earlier, later], [later, earlier]):
        tables, _ = render(tmp_path, [record("none", 0, ["patch"]), *order])
        assert next(t for t in tables if t.title.startswith("Table 1:")).rows == [["spectral", "0.70"]]


def test_a_cell_with_fewer_seeds_than_the_others_is_said_to_have_them(tmp_path: Path) -> None:
    """Seeds 0-2 of the baseline but only seed 0 of spectral: its bare 0.60 is one seed, and the header says so."""
    spectral = record("spectral", 0, ["patch"], auroc=0.6, clean_acc_after=0.8, asr_after={"patch": 0.5})
    _, markdown = render(tmp_path, [*(record("none", seed, ["patch"]) for seed in range(3)), spectral])
    assert "1 of 2 experiments hold fewer seeds than the others' 3 (as few as 1)" in markdown
    _, markdown = render(tmp_path, [record("none", 0, ["patch"]), spectral])
    assert "fewer seeds" not in markdown


def test_a_cell_whose_seeds_ran_different_code_says_so(tmp_path: Path) -> None:
    """A resume after a code change, stopped after seed 0: the cell's mean mixes two versions of the code."""
    old = record("spectral", 1, ["patch"], auroc=0.6, clean_acc_after=0.8, asr_after={"patch": 0.5})
    new = record("spectral", 0, ["patch"], auroc=0.7, clean_acc_after=0.8, asr_after={"patch": 0.5},
                 code={**old["code"], "benchbd": "b2"})
    tables, _ = render(tmp_path, [record("none", 0, ["patch"]), record("none", 1, ["patch"]), new, old])
    table_1 = next(t for t in tables if t.title.startswith("Table 1:"))
    assert table_1.rows == [["spectral", "0.65 ± 0.64 (n=2) (1)"]]
    assert table_1.notes == ["(1) its seeds were computed by different versions of benchbd's or a plugin's code"]


def test_records_of_two_profiles_are_not_averaged_into_one_table(tmp_path: Path) -> None:
    """A run directory is one dataset, model and profile: the same cell at 8 and 16 epochs is two results, which one
    table would show as one (the later, or their mean); rendering refuses and names both settings."""
    records = [record("none", 0, ["patch"]), record("none", 0, ["patch"], profile="fast (epochs=16)")]
    with pytest.raises(BenchbdError, match=r"2 settings \(dataset synth-signs, model small-cnn, profile fast; .*profile fast \(epochs=16\)\)"):
        render(tmp_path, records)
    assert not (tmp_path / "leaderboard.md").exists()


def test_a_defenses_warnings_are_footnoted_with_the_seeds_that_gave_them(tmp_path: Path) -> None:
    """BaDLoss records probes that fell short in ``details["warnings"]``: the table says so in the cells of its row."""
    short = "17 backdoor probes of the 250 asked for (the clean-label trigger needs examples of class 2)"
    records = [
        record("none", 0, ["sinusoid"]),
        record("badloss", 0, ["sinusoid"], auroc=0.6, clean_acc_after=0.9, asr_after={"sinusoid": 0.5}, removed_frac=0.1,
               details={"warnings": [short]}),
        record("badloss", 1, ["sinusoid"], auroc=0.7, clean_acc_after=0.9, asr_after={"sinusoid": 0.4}, removed_frac=0.1),
    ]
    tables, _ = render(tmp_path, records)
    detection = table(tables, "Table 1:")
    assert detection.rows[0][1].endswith("(1)") and detection.notes == [f"(1) the defense warned in 1 of 2 seeds: {short}"]


def test_the_examples_removed_have_their_tables_one_attack_and_multi_attack(tmp_path: Path) -> None:
    """AUROC says how well the scores rank; what the harness removed before retraining is the flags' TPR and FPR."""
    flags = {"auroc": 0.9, "clean_acc_after": 0.9, "removed_frac": 0.1}
    records = [
        record("none", 0, ["patch"]),
        record("spectral", 0, ["patch"], tpr=0.8, fpr=0.05, asr_after={"patch": 0.1}, **flags),
        record("spectral", 1, ["patch"], tpr=0.6, fpr=0.15, asr_after={"patch": 0.3}, **flags),
        record("spectral", 0, ["patch", "wanet"], tpr=0.5, fpr=0.2, auroc_per_attack={"patch": 0.9, "wanet": 0.8},
               asr_after={"patch": 0.1, "wanet": 0.5}, **flags),
    ]
    tables, _ = render(tmp_path, records)
    one = table(tables, "Table 1c: one-attack examples flagged")
    assert one.columns == ["Defense", "TPR patch", "FPR patch"]
    assert one.rows == [["spectral", "70.00 ± 127.06 (n=2)", "10.00 ± 63.53 (n=2)"]]
    multi = table(tables, "Table 3d: multi-attack examples flagged")
    assert multi.columns == ["Defense", "TPR", "FPR"] and multi.rows == [["spectral", "50.00", "20.00"]]


def test_the_header_says_how_many_trusted_examples_the_defenses_held(tmp_path: Path) -> None:
    flags = {"auroc": 0.9, "clean_acc_after": 0.9, "asr_after": {"patch": 0.1}}
    records = [record("none", 0, ["patch"]), record("spectral", 0, ["patch"], trusted=500, **flags),
               record("badloss", 0, ["patch"], trusted=1500, **flags)]
    _, markdown = render(tmp_path, records)
    assert "held 500 to 1,500 trusted clean training examples a cell" in " ".join(markdown.split())
    _, markdown = render(tmp_path, records[:2])
    assert "held 500 trusted clean" in " ".join(markdown.split())
    _, markdown = render(tmp_path, records[:1])
    assert "trusted clean" not in markdown


def test_the_header_says_what_share_each_attack_poisoned(tmp_path: Path) -> None:
    records = [record("none", 0, ["patch"], params={"attacks": {"patch": {"ratio": 0.02, "target": None}}, "defense": {}}),
               record("none", 0, ["patch", "wanet"],
                      params={"attacks": {"patch": {"ratio": 0.05}, "wanet": {"ratio": 0.1}}, "defense": {}}),
               record("none", 0, ["blind"], params={"attacks": {"blind": {"target": 0}}, "defense": {}})]
    _, markdown = render(tmp_path, records)
    assert "Poisoned share of the training set (the attack's ratio), by attack: patch 2% and 5%, wanet 10%." in markdown


def test_a_lone_warning_text_is_one_footnote_and_any_warning_renders() -> None:
    from benchbd.leaderboard.cells import recorded_warnings

    assert recorded_warnings({"details": {"warnings": "17 probes short"}}) == ["17 probes short"]
    assert recorded_warnings({"details": {"warnings": [{"probes": 17}, "a", "a"]}}) == ["{'probes': 17}", "a"]
    assert recorded_warnings({"details": None}) == [] and recorded_warnings({}) == []


def test_old_records_footnote_the_fpr_of_the_examples_flagged_not_the_tpr(tmp_path: Path) -> None:
    """Old records counted the trusted (clean) examples as judged: their FPR, not their TPR, is biased."""
    from benchbd.leaderboard.cells import OLD_FPR

    records = [record("spectral", 0, ["patch"], code=None, auroc=0.9, tpr=0.8, fpr=0.1, clean_acc_after=0.9,
                      asr_after={"patch": 0.1})]
    tables, _ = render(tmp_path, records)
    removed = table(tables, "Table 1c")
    assert removed.rows[0][1] == "80.00" and removed.rows[0][2] == "10.00 (1)" and removed.notes == [f"(1) {OLD_FPR}"]


def test_an_undefined_detection_figure_says_why_in_its_column(tmp_path: Path) -> None:
    """Without an attack a model cell has no backdoored model: each column's footnote names its own reason."""
    clean_only = record("neural-cleanse-model", 0, [], unit="model", fpr=0.25, class_fpr=0.01, target_found={},
                        model_scores={"backdoored": 1.0, "clean": [1.0, 2.0, 0.5, 0.2]})
    clean_only.update(tpr=None, auroc=None)  # measured, undefined (record() leaves out fields given as None)
    tables, _ = render(tmp_path, [clean_only])
    model = table(tables, "Table 4")
    row = dict(zip(model.columns, model.rows[0]))
    notes = {note.split(" ", 1)[0]: note.split(" ", 1)[1] for note in model.notes if note.startswith("(")}
    assert notes[row["Backdoored flagged"].split()[-1]] == "undefined: no backdoored model judged (no attack, or the defense could not judge it)"
    assert notes[row["Target named"].split()[-1]] == "undefined: no target among the classes the defense examined"
    assert row["Clean models flagged"] == "25.00"
