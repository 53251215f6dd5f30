"""A matrix of several attack × defense blocks, the defaults by device, and the CPU demo that `benchbd matrix` runs
with nothing named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchbd.data.images import largest_indices
from benchbd.data.synth_signs import GTSRB_TRAIN_COUNTS, class_counts
from benchbd.defenses import ExampleDefense
from benchbd.errors import BenchbdError
from benchbd.harness.config import CPU_DEMO, PAPER_MULTI_ATTACKS, Block, MatrixConfig, load_dataset, with_defaults
from benchbd.harness.config_file import read_config
from benchbd.harness.plan import Group, Plan
from benchbd.registry import default_registry


def plan(tiny_signs: Path, **config: object) -> Plan:
    return Plan(MatrixConfig(dataset=f"npz:{tiny_signs}", device="cpu", **config), default_registry())


def test_blocks_share_an_attack_set_and_each_group_gets_its_blocks_defenses(tiny_signs: Path) -> None:
    blocks = plan(tiny_signs, blocks=[Block(("patch",), ("none", "spectral"), "both", ("patch", "single-pixel")),
                                      Block(("patch", "single-pixel"), ("abl", "spectral"))])
    patch, multi, pixel = Group(("patch",), "single", 0), Group(("patch", "single-pixel"), "multi", 0), Group(("single-pixel",), "single", 0)
    assert blocks.cells == {patch: ["none", "spectral", "abl"], multi: ["none", "spectral"], pixel: ["abl", "spectral"]}
    assert blocks.total_cells == 7 and blocks.resolved_config()["cells"] == 7
    assert [len(defenses) for _, defenses in blocks.pending(set())] == [3, 2, 2]
    # a cell is named by what it is, not by the block it came from
    alone = plan(tiny_signs, attacks=["patch"], defenses=["abl"], mode="single")
    assert alone.cell_hash(alone.groups[0], "abl") == blocks.cell_hash(patch, "abl")


def test_without_blocks_the_matrix_is_one_product(tiny_signs: Path) -> None:
    product = plan(tiny_signs, attacks=["patch", "single-pixel"], defenses=["none", "abl"])
    assert [(g.attacks, g.mode) for g in product.groups] == [(("patch",), "single"), (("single-pixel",), "single"),
                                                             (("patch", "single-pixel"), "multi")]
    assert all(defenses == ["none", "abl"] for defenses in product.cells.values()) and product.total_cells == 6


def test_defaults_by_device() -> None:
    gpu = with_defaults(MatrixConfig(), gpu=True)
    assert (gpu.attacks, gpu.defenses, gpu.blocks) == (["all"], ["all"], None)
    assert (gpu.dataset, gpu.profile, gpu.mode, gpu.clean_models) == ("synth-signs", "fast", "both", 4)
    demo = with_defaults(MatrixConfig(), gpu=False)
    assert demo.blocks == CPU_DEMO.blocks and demo.params == CPU_DEMO.params
    assert (demo.dataset, demo.profile, demo.clean_models) == ("synth-signs:classes=10", "cpu", 2)
    mine = with_defaults(MatrixConfig(dataset="gtsrb", params={"patch": {"ratio": "0.1"}, "abl": {"gamma": "0.4"}}), gpu=False)
    assert mine.dataset == "gtsrb" and mine.blocks == CPU_DEMO.blocks
    assert mine.params["patch"] == {"ratio": "0.1"} and mine.params["abl"] == {"gamma": "0.4"}
    assert mine.params["aegis"] == CPU_DEMO.params["aegis"]
    named = with_defaults(MatrixConfig(attacks=["patch"]), gpu=False)  # naming anything leaves the demo
    assert (named.defenses, named.profile, named.blocks) == (["all"], "fast", None)
    with pytest.raises(BenchbdError, match="--mode and --multi-attacks need --attacks"):
        with_defaults(MatrixConfig(mode="single"), gpu=False)
    with pytest.raises(BenchbdError, match="blocks replace attacks"):
        with_defaults(MatrixConfig(attacks=["patch"], blocks=[Block(("patch",), ("none",))]), gpu=True)


def test_the_cpu_demo_judges_every_builtin_plugin(tmp_path: Path) -> None:
    """Every built-in attack has a cell, every built-in defense judges at least two attack sets, and the
    example-level defenses judge the multi-attack set of BaDLoss's six (issue 19's default run)."""
    registry = default_registry()
    demo = Plan(MatrixConfig(device="cpu", data_root=tmp_path), registry)
    builtin = {category: {n for n in registry.names(category) if registry.provenance(category, n).startswith("benchbd ")}
               for category in ("attacks", "defenses")}
    assert builtin["attacks"] <= {name for group in demo.groups for name in group.attacks}
    for defense in builtin["defenses"]:
        judged = [group for group, defenses in demo.cells.items() if defense in defenses]
        assert len(judged) >= 2, defense
        if isinstance(demo.defenses[defense], ExampleDefense):
            assert Group(PAPER_MULTI_ATTACKS, "multi", 0) in judged, defense
    assert demo.data.num_classes == 10 and demo.profile.name == "cpu" and demo.config.clean_models == 2


def test_synth_signs_largest_classes(tmp_path: Path) -> None:
    two = load_dataset(default_registry(), "synth-signs:classes=2", tmp_path)
    kept = largest_indices(GTSRB_TRAIN_COUNTS, 2)
    assert list(kept) == [1, 2]  # GTSRB's 2,220 and 2,250 training images
    assert (two.num_classes, two.name, two.family) == (2, "synth-signs:classes=2", "gtsrb")
    np.testing.assert_array_equal(np.bincount(two.y_train), class_counts(8600)[kept])
    np.testing.assert_array_equal(np.bincount(two.y_test), class_counts(2580)[kept])
    assert (tmp_path / "synth-signs-v1-classes2.npz").is_file()
    tracked = load_dataset(default_registry(), "synth-signs:frames=5,classes=2", tmp_path)
    np.testing.assert_array_equal(tracked.y_train.shape, two.y_train.shape)
    np.testing.assert_array_equal(tracked.x_test, two.x_test)
    tracks = np.load(tmp_path / "synth-signs-v1-classes2-frames5.npz")["train_track"]
    assert len(np.unique(tracks)) == sum(-(-count // 5) for count in class_counts(8600)[kept])
    for bad in ("synth-signs:classes=1", "synth-signs:classes=44", "synth-signs:every=2", "synth-signs:classes=2,classes=3",
                "synth-signs:frames=0"):
        with pytest.raises(BenchbdError, match="classes=N.*frames=F"):
            load_dataset(default_registry(), bad, tmp_path)


def test_config_file_blocks(tmp_path: Path) -> None:
    path = tmp_path / "blocks.toml"
    path.write_text('[[blocks]]\nattacks = ["patch"]\ndefenses = ["none", "spectral"]\nmode = "both"\n'
                    'multi_attacks = ["patch", "wanet"]\n[[blocks]]\nattacks = ["blind"]\ndefenses = ["rttd"]\n'
                    "[params.patch]\nratio = 0.05\n")
    config = read_config(path)
    assert config["blocks"] == [Block(("patch",), ("none", "spectral"), "both", ("patch", "wanet")), Block(("blind",), ("rttd",))]
    assert config["params"] == {"patch": {"ratio": 0.05}}


@pytest.mark.parametrize(
    ("text", "message"),
    [("blocks = 3\n", "must be \\[\\[blocks\\]\\] tables"), ('[[blocks]]\nattacks = ["patch"]\n', "block 1 needs attacks and defenses"),
     ('[[blocks]]\nattacks = ["patch"]\ndefenses = []\n', "block 1's defenses must be a non-empty list"),
     ('[[blocks]]\nattacks = ["patch"]\ndefenses = ["none"]\nmode = "all"\n', "block 1's mode must be")],
)
def test_bad_config_file_blocks(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(BenchbdError, match=message):
        read_config(path)
