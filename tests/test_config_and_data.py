"""Matrix config files (flags override them), npz datasets, and results as a DataFrame."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

import benchbd
from benchbd.data.images import load_npz
from benchbd.errors import BenchbdError
from benchbd.harness.config_file import read_config
from benchbd.harness.config import MatrixConfig, build_attack, check_config, load_dataset
from benchbd.registry import default_registry


def test_config_file_sets_options_and_plugin_parameters(tmp_path: Path) -> None:
    path = tmp_path / "matrix.toml"
    path.write_text('dataset = "gtsrb"\nseeds = 3\n\n'
                    "[attacks.patch]\nratio = 0.05\n[attacks.single-pixel]\n[defenses.none]\n[defenses.spectral]\nfraction = 0.2\n")
    config = read_config(path)
    assert config["dataset"] == "gtsrb" and config["seeds"] == 3
    assert config["attacks"] == ["patch", "single-pixel"]
    assert config["defenses"] == ["none", "spectral"]
    assert config["params"] == {"patch": {"ratio": 0.05}, "single-pixel": {}, "none": {}, "spectral": {"fraction": 0.2}}


def test_the_example_files_in_the_config_modules_docstring_are_valid(tmp_path: Path) -> None:
    """README sends readers to these examples: every key must land where it means something, every parameter
    must exist."""
    from benchbd.harness import config_file
    from benchbd.harness.servers import Simulation
    from benchbd.params import build

    registry = default_registry()
    # the indented blocks, blank lines inside them kept
    examples = re.findall(r"\n((?:    .*\n|\n)+)", config_file.__doc__)
    texts = [textwrap.dedent(example) for example in examples if example.strip()]
    assert len(texts) == 2
    for i, text in enumerate(texts):
        path = tmp_path / f"example{i}.toml"
        path.write_text(text)
        config = read_config(path)
        for name, params in config["params"].items():
            cls = Simulation if name == "simulation" else registry.attack(name) if name in registry.names("attacks") else registry.defense(name)
            build(cls, params)
    assert read_config(tmp_path / "example0.toml")["multi_attacks"] == ["patch", "wanet"]


@pytest.mark.parametrize(
    ("text", "message"),
    [("datset = 1\n", "unknown key(s) datset"), ("seeds = 'x'\n", "'seeds' has the wrong type"),
     ("attacks = 3\n", "'attacks' must be"), ("dataset = \n", "not valid TOML"),
     ("params = 3\n", "[params] must hold a table per plugin")],
)
def test_bad_config_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(BenchbdError, match=re.escape(message)):
        read_config(path)


def test_flags_override_the_file(tiny_signs: Path, tmp_path: Path, capsys) -> None:
    from benchbd.cli import main

    path = tmp_path / "matrix.toml"
    path.write_text(f'dataset = "npz:{tiny_signs}"\ndevice = "cpu"\nmode = "single"\n[attacks.patch]\nratio = 0.3\n')
    code = main(["matrix", "--config", str(path), "--defenses", "none", "-P", "patch.ratio=0.9", "--seeds", "0",
                 "--out", str(tmp_path / "run")])
    assert code == 2 and "--seeds must be at least 1" in capsys.readouterr().err


def test_load_results_flattens_per_attack_fields_one_row_per_cell(tmp_path: Path) -> None:
    """A cell computed again (after a change of code) is one row, its latest record, as in the leaderboard."""
    record = {"mode": "multi", "attacks": ["patch", "wanet"], "defense": "none", "seed": 0, "status": "ok",
              "asr": {"patch": 0.9, "wanet": 0.5}}
    again = {**record, "asr": {"patch": 0.9, "wanet": 0.6}}
    (tmp_path / "results.jsonl").write_text(json.dumps(record) + "\n" + json.dumps(again) + "\n")
    frame = benchbd.load_results(tmp_path)
    assert len(frame) == 1 and frame.loc[0, "attack_set"] == "patch+wanet"
    assert frame.loc[0, "asr.wanet"] == 0.6
    model = {"mode": "single", "attacks": ["patch"], "defense": "aegis", "unit": "model", "seed": 0, "status": "ok",
             "tpr_at_fpr": {"0.01": 1.0, "0.05": 1.0}, "model_scores": {"backdoored": 2.0, "clean": [1.0, 0.5, 0.2, 0.1]}}
    (tmp_path / "results.jsonl").write_text(json.dumps(model) + "\n")  # a record before 5faef96: read as Table 4 does
    assert benchbd.load_results(tmp_path)[["tpr_at_fpr.0.01", "tpr_at_fpr.0.05"]].isna().all(axis=None)
    other_profile = {**record, "profile": "fast (epochs=16)"}  # another run's results joined: not one cell
    (tmp_path / "results.jsonl").write_text(json.dumps(record) + "\n" + json.dumps(other_profile) + "\n")
    with pytest.raises(BenchbdError, match="its records come from 2 settings"):
        benchbd.load_results(tmp_path)


def test_export_csv(tmp_path: Path) -> None:
    import pandas as pd

    from benchbd.cli import main

    record = {"mode": "single", "attacks": ["patch"], "defense": "none", "seed": 0, "status": "ok", "clean_acc": 0.9,
              "asr": {"patch": 0.8}}
    (tmp_path / "results.jsonl").write_text(json.dumps(record) + "\n")
    assert main(["export", str(tmp_path), "--csv", str(tmp_path / "out.csv")]) == 0
    table = pd.read_csv(tmp_path / "out.csv")
    assert table.loc[0, "asr.patch"] == 0.8 and table.loc[0, "defense"] == "none"


@pytest.mark.parametrize(("family", "ratio"), [(None, 0.01), ("gtsrb", 0.02)])
def test_an_npz_file_may_declare_its_family(tiny_signs: Path, tmp_path: Path, family: str | None, ratio: float) -> None:
    path = tmp_path / "signs.npz"
    np.savez(path, **load_npz(tiny_signs), **({"family": family} if family else {}))
    registry = default_registry()
    data = load_dataset(registry, f"npz:{path}", tmp_path)
    assert data.family == (family or "npz")
    assert build_attack(registry, "patch", data, {}).ratio == ratio  # the GTSRB paper default only when declared


def test_an_npz_family_must_be_a_string(tiny_signs: Path, tmp_path: Path) -> None:
    path = tmp_path / "signs.npz"
    np.savez(path, **load_npz(tiny_signs), family=np.arange(3))
    with pytest.raises(BenchbdError, match="'family' must be a string"):
        load_dataset(default_registry(), f"npz:{path}", tmp_path)


def _gtsrb_cache(root: Path, with_frames: bool = True) -> None:
    """A prepared GTSRB cache in the shape decode_gtsrb32.py writes: 2 classes × 2 tracks × 30 frames."""
    rng = np.random.default_rng(0)
    frame, track = np.tile(np.arange(30), 4), np.repeat([0, 1, 0, 1], 30)
    arrays = {"x_train": rng.integers(0, 256, (120, 32, 32, 3), dtype=np.uint8), "y_train": np.repeat([0, 1], 60),
              "x_test": rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), "y_test": np.arange(10) % 2}
    if with_frames:
        arrays.update(train_track=track.astype(np.int16), train_frame=frame.astype(np.int16))
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "gtsrb.npz", **arrays)


def test_gtsrb_every_kth_frame_keeps_every_track(tmp_path: Path) -> None:
    _gtsrb_cache(tmp_path)
    whole = load_dataset(default_registry(), "gtsrb", tmp_path)
    subset = load_dataset(default_registry(), "gtsrb:every=10", tmp_path)
    assert len(whole.x_train) == 120 and len(subset.x_train) == 12  # frames 0, 10, 20 of each of the 4 tracks
    assert subset.name == "gtsrb:every=10" and subset.family == "gtsrb"
    np.testing.assert_array_equal(subset.x_train[:3], whole.x_train[[0, 10, 20]])
    np.testing.assert_array_equal(np.bincount(subset.y_train), [6, 6])
    np.testing.assert_array_equal(subset.x_test, whole.x_test)


def test_gtsrb_largest_classes_relabelled_in_index_order(tmp_path: Path) -> None:
    """classes=N keeps the N classes with the most training images in both splits, relabelled 0..N-1."""
    rng = np.random.default_rng(0)
    y_train = np.repeat([0, 1, 2], [30, 60, 45])
    arrays = {"x_train": rng.integers(0, 256, (135, 32, 32, 3), dtype=np.uint8), "y_train": y_train,
              "x_test": rng.integers(0, 256, (9, 32, 32, 3), dtype=np.uint8), "y_test": np.arange(9) % 3,
              "train_track": np.repeat([0, 1, 2], [30, 60, 45]).astype(np.int16),
              "train_frame": np.concatenate([np.arange(30), np.arange(60) % 30, np.arange(45) % 30]).astype(np.int16)}
    np.savez(tmp_path / "gtsrb.npz", **arrays)
    two = load_dataset(default_registry(), "gtsrb:classes=2", tmp_path)
    assert two.num_classes == 2 and two.name == "gtsrb:classes=2"
    np.testing.assert_array_equal(np.bincount(two.y_train), [60, 45])  # old classes 1 and 2
    np.testing.assert_array_equal(two.x_train, arrays["x_train"][30:])
    np.testing.assert_array_equal(two.x_test, arrays["x_test"][np.arange(9) % 3 != 0])
    np.testing.assert_array_equal(two.y_test, [0, 1, 0, 1, 0, 1])
    both = load_dataset(default_registry(), "gtsrb:every=15,classes=2", tmp_path)
    np.testing.assert_array_equal(np.bincount(both.y_train), [4, 3])  # frames 0 and 15 of each track
    for bad in ("gtsrb:classes=4", "gtsrb:classes=2,classes=3", "gtsrb:classes=0"):
        with pytest.raises(BenchbdError, match="classes"):
            load_dataset(default_registry(), bad, tmp_path)


@pytest.mark.parametrize(
    ("spec", "with_frames", "message"),
    [("gtsrb:every=0", True, "every=K"), ("gtsrb:half", True, "unknown argument 'half'"),
     ("gtsrb:every=5", False, "has none; re-create it with"), ("synth-signs:every=5", True, "unknown argument .every=5.")],
)
def test_gtsrb_subset_errors(tmp_path: Path, spec: str, with_frames: bool, message: str) -> None:
    _gtsrb_cache(tmp_path, with_frames)
    with pytest.raises(BenchbdError, match=message):
        load_dataset(default_registry(), spec, tmp_path)


def test_seeds_and_clean_models_are_accepted_up_to_the_clean_models_seeds() -> None:
    """Clean model i of seed s trains with 10,000·(s + 1) + i: seeds 0-9,999 and 10,000 clean models never meet."""
    check_config(MatrixConfig(first_seed=9_999, seeds=1, clean_models=10_000))
    with pytest.raises(BenchbdError, match="--first-seed plus --seeds must be at most 10,000"):
        check_config(MatrixConfig(first_seed=9_999, seeds=2))
    with pytest.raises(BenchbdError, match="--clean-models must be at most 10,000"):
        check_config(MatrixConfig(clean_models=10_001))
