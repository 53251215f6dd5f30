"""The protocol's guarantees ("Numbers you can trust"): a cell's record does not depend on what else ran, detection is
measured over the examples a defense judges, cells and caches follow the plugins' code, fresh attack state per
training, and the paper's multi-attack set. Matrices train the cpu profile's narrow-cnn: these are the harness's
guarantees, not a model's."""

from __future__ import annotations

import ast
import py_compile
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import benchbd
from benchbd import ExampleVerdict
from benchbd.cli import main
from benchbd.harness.matrix import Matrix
from benchbd.harness.config import PAPER_MULTI_ATTACKS, MatrixConfig, trusted_count
from benchbd.harness.digests import harness_sources, plugin_sources, source_digest, sources_digest, tree_text
from benchbd.harness.plan import Plan
from benchbd.data.images import ImageData
from benchbd.errors import BenchbdError
from benchbd.harness.poisoning import CLEAN, check_eligible, poison_training_set
from benchbd.harness.progress import SilentProgress
from benchbd.harness.results import outcome, read_records
from benchbd.harness.units.example import checked_scores, detection
from benchbd.leaderboard.labels import label_configurations
from benchbd.registry import Registry, default_registry, make_manager
from benchbd_builtins.attacks.patch import PatchAttack
from benchbd_builtins.attacks.sinusoid import SinusoidAttack
from benchbd_builtins.attacks.wanet import WaNetAttack

def records_of(out: Path, defense: str) -> list[dict]:
    return [outcome(r) for r in read_records(out / "results.jsonl") if r["defense"] == defense]


def test_a_cells_record_is_the_same_alone_after_others_and_resumed(tiny_signs: Path, tmp_path: Path) -> None:
    """BaDLoss draws its probes and the harness its trusted set: neither may depend on the cells run before (2 epochs:
    the records' equality is the point, not what the models learn)."""
    argv = ["matrix", "--dataset", f"npz:{tiny_signs}", "--attacks", "patch", "--mode", "single", "--device", "cpu", "--profile", "cpu",
            "--epochs", "2", "-P", "patch.ratio=0.1"]
    assert main([*argv, "--defenses", "badloss", "--out", str(tmp_path / "alone")]) == 0
    assert main([*argv, "--defenses", "none,spectral,badloss", "--out", str(tmp_path / "after")]) == 0
    assert main([*argv, "--defenses", "none,spectral", "--out", str(tmp_path / "resumed")]) == 0
    assert main([*argv, "--defenses", "spectral,badloss", "--out", str(tmp_path / "resumed")]) == 0
    alone, after, resumed = (records_of(tmp_path / name, "badloss") for name in ("alone", "after", "resumed"))
    assert len(alone) == 1 and alone == after == resumed
    record = alone[0]
    # 430 examples, 43 poisoned: the trusted set is capped at half of the 387 clean ones; BaDLoss's clean probes
    # take half of it, and its mislabelled probes overwrite as many of the rest, which it cannot judge either.
    assert record["trusted"] == 193 and record["judged"] == 430 - 193 - 96
    assert record["details"]["probes"] == {"clean": 96, "backdoor": 97, "mislabelled": 96}
    assert len(record["details"]["warnings"]) == 3


@dataclass
class ExampleVandal(benchbd.ExampleDefense):
    """Writes over everything its context holds, as a careless plugin might."""

    name: ClassVar[str] = "example-vandal"
    description: ClassVar[str] = "test: overwrites its context's data, features and model"

    def score_examples(self, context: benchbd.ExampleContext) -> ExampleVerdict:
        context.x_train[:] = 0
        context.y_train[:] = 0
        context.data.x_test[:] = 0
        context.data.y_test[:] = 0
        context.trusted_clean[:] = 0
        context.attacks[0].corner = "top-left"  # the patch the later cells measure ASR with
        context.attacks.clear()
        context.features()[:] = 0
        with torch.no_grad():
            for parameter in context.model.parameters():
                parameter.zero_()
        context.model.train()
        return ExampleVerdict(np.zeros(len(context.y_train)), np.zeros(len(context.y_train), dtype=bool))


@dataclass
class ModelVandal(benchbd.ModelDefense):
    name: ClassVar[str] = "model-vandal"
    description: ClassVar[str] = "test: overwrites its context's model and data"

    def inspect_model(self, context: benchbd.ModelContext) -> benchbd.ModelVerdict:
        context.train_x[:] = 0
        with torch.no_grad():
            for parameter in context.model.parameters():
                parameter.zero_()
        return benchbd.ModelVerdict(score=0.0, flagged=False)


@dataclass
class MeanLogit(benchbd.ModelDefense):
    """Scores a model by its logits on the defender's clean images and the training set: any change shows."""

    name: ClassVar[str] = "mean-logit"
    description: ClassVar[str] = "test: the model's mean top logit"

    def inspect_model(self, context: benchbd.ModelContext) -> benchbd.ModelVerdict:
        logits = context.trainer.logits(context.model, np.concatenate([context.clean_x, context.train_x[:50]]))
        return benchbd.ModelVerdict(score=float(logits.max(1).values.mean()), flagged=False)


def test_what_a_defense_changes_in_its_context_cannot_reach_the_next_cell(tiny_signs: Path, tmp_path: Path) -> None:
    """Each defense gets its own copies of the training set, features, model and clean data: a defense that
    overwrites them leaves the group's later cells as they are alone."""
    manager = make_manager()
    for name, plugin in default_registry().manager.list_name_plugin():
        manager.register(plugin, name=name)
    defenses = [ExampleVandal, ModelVandal, MeanLogit]
    manager.register(SimpleNamespace(benchbd_defenses=benchbd.hookimpl(lambda: defenses)), name="test-plugins")
    registry = Registry(manager, {"test-plugins": "tests"})

    def records(names: list[str], out: str) -> dict[str, dict]:
        config = MatrixConfig(dataset=f"npz:{tiny_signs}", attacks=["patch"], defenses=names, mode="single", device="cpu",
                              profile="cpu", epochs=2, clean_models=1, params={"patch": {"ratio": 0.1}}, out=tmp_path / out)
        assert not Matrix(config, registry, SilentProgress()).run().failed
        return {name: records_of(tmp_path / out, name)[0] for name in names}

    alone = records(["spectral", "mean-logit"], "alone")
    after = records(["example-vandal", "model-vandal", "spectral", "mean-logit"], "after")
    assert after["spectral"] == alone["spectral"] and after["mean-logit"] == alone["mean-logit"]
    assert alone["mean-logit"]["model_scores"]["backdoored"] != 0  # the vandal's zeroed model would score 0


def test_the_harness_marks_the_trusted_examples_on_its_own_copy_of_the_verdict() -> None:
    """``mitigate(context, verdict)`` gets the verdict the defense returned, not one the harness has edited."""
    verdict = ExampleVerdict(np.zeros(4), np.zeros(4, dtype=bool), judged=np.ones(4, dtype=bool))
    _, _, judged = checked_scores(SimpleNamespace(name="test"), verdict, 4)
    judged[:2] = False
    assert verdict.judged.all()


def test_detection_counts_only_the_judged_examples() -> None:
    """A defense that scores its trusted examples 0 must not be credited for them: A + f·(1 − A) is not A."""
    rng = np.random.default_rng(0)
    source = np.where(rng.random(1000) < 0.1, 0, CLEAN)
    scores = rng.random(1000) + 0.3 * (source != CLEAN)
    trusted = np.flatnonzero(source == CLEAN)[:300]
    scores[trusted] = 0
    judged = np.ones(1000, dtype=bool)
    judged[trusted] = False
    everything = detection(scores, scores > 0.9, source, np.ones(1000, dtype=bool), ["patch"])
    measured = detection(scores, scores > 0.9, source, judged, ["patch"])
    assert measured["judged"] == 700 and everything["judged"] == 1000
    untouched = np.setdiff1d(np.arange(1000), trusted)
    assert measured["auroc"] == pytest.approx(roc_auc_score(source[untouched] != CLEAN, scores[untouched]))
    share = len(trusted) / (source == CLEAN).sum()  # f, the trusted share of the clean examples
    assert everything["auroc"] == pytest.approx(measured["auroc"] + share * (1 - measured["auroc"]))
    assert measured["fpr"] == pytest.approx((scores[untouched][source[untouched] == CLEAN] > 0.9).mean())


PLUGIN = '''
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import benchbd


@dataclass
class LoudestPixel(benchbd.ExampleDefense):
    name: ClassVar[str] = "loudest-pixel"
    description: ClassVar[str] = "scores examples by their brightest pixel"

    def score_examples(self, context):
        scores = context.x_train.reshape(len(context.x_train), -1).max(1).astype(float)
        return benchbd.ExampleVerdict(scores, np.zeros(len(scores), dtype=bool))


@benchbd.hookimpl
def benchbd_defenses():
    return [LoudestPixel]
'''


def test_an_edited_plugin_gets_its_cells_computed_again(tiny_signs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "plugin" / "loudest_pixel.py"
    source.parent.mkdir()
    source.write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(source.parent))
    import loudest_pixel

    manager = make_manager()
    for name, plugin in default_registry().manager.list_name_plugin():
        manager.register(plugin, name=name)
    manager.register(loudest_pixel, name="loudest-pixel")
    registry = Registry(manager, {"loudest-pixel": "loudest-pixel"})
    config = MatrixConfig(dataset=f"npz:{tiny_signs}", attacks=["patch"], defenses=["loudest-pixel"], mode="single",
                          device="cpu", profile="cpu", out=tmp_path / "run")
    assert Matrix(config, registry, SilentProgress()).run().done == 1
    assert Matrix(config, registry, SilentProgress()).run().skipped == 1
    source.write_text(source.read_text() + "\n# a comment is not code\n")
    assert Matrix(config, registry, SilentProgress()).run().skipped == 1
    source.write_text(source.read_text() + "\nCHANGED = True\n")
    summary = Matrix(config, registry, SilentProgress()).run()
    assert (summary.done, summary.skipped) == (1, 0)
    first, second = read_records(tmp_path / "run" / "results.jsonl")[:2]
    assert first["code"]["defense"] != second["code"]["defense"] and first["code"]["attacks"] == second["code"]["attacks"]
    assert len(list((tmp_path / "run" / "models").glob("*.pt"))) == 1  # the poisoned model's code did not change

    class EditedWhileTheModelLoads(SilentProgress):
        """Someone edits the plugin while the matrix runs: its record is not the cell that was planned."""

        def cell_started(self, what: str) -> None:
            source.write_text(source.read_text() + "\nEDITED_DURING_THE_RUN = True\n")

    source.write_text(source.read_text() + "\nCHANGED_AGAIN = True\n")
    with pytest.warns(UserWarning, match="loudest-pixel / seed 0: computed with other code than this matrix planned with"):
        assert Matrix(config, registry, EditedWhileTheModelLoads()).run().done == 1
    sys.modules.pop("loudest_pixel")


def test_the_trusted_set_is_badloss_2n_unless_asked_and_names_the_cell(tiny_signs: Path, tmp_path: Path) -> None:
    """BaDLoss A.1's 2n = 500 (×3 probes against the warping attack alone, section 5.1); ``--trusted N`` takes N,
    and a cell run with another N is computed again, not served from the run directory."""
    assert trusted_count([PatchAttack()], single_attack=True) == 500
    assert trusted_count([WaNetAttack()], single_attack=True) == 1500
    assert trusted_count([WaNetAttack(), PatchAttack()], single_attack=False) == 500
    argv = ["matrix", "--dataset", f"npz:{tiny_signs}", "--attacks", "patch", "--defenses", "spectral", "--mode", "single",
            "--device", "cpu", "--profile", "cpu", "-P", "patch.ratio=0.1", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    assert main([*argv, "--trusted", "60"]) == 0
    default, sixty = read_records(tmp_path / "run" / "results.jsonl")
    assert default["trusted"] == 193 and sixty["trusted"] == 60  # the default capped at half of the 387 clean examples
    assert sixty["judged"] == 430 - 60 and default["config_hash"] != sixty["config_hash"]
    assert [r["params"]["harness"] for r in (default, sixty)] == [{"trusted": None}, {"trusted": 60}]
    assert {r["defense"] for r in label_configurations([default, sixty])} == {"spectral (trusted=None)", "spectral (trusted=60)"}


def test_a_plugins_digest_covers_the_helper_modules_it_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Editing a module the plugin imports from its own package (as BaDLoss imports probes.py), however it imports
    it, changes the digest; editing a module it does not import, or the package's __init__ (which imports every
    module of the package), does not."""
    package = tmp_path / "digest_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from digest_pkg import unused\n")
    helpers = {"helper": "def boost(x):\n    return 2 * x\n", "relative": "SCALE = 2\n", "dotted": "OFFSET = 1\n",
               "late": "from digest_pkg.chained import CHAINED\n",  # chained is reached through another helper
               "chained": "CHAINED = 1\n", "unused": "VALUE = 1\n"}
    for name, text in helpers.items():
        (package / f"{name}.py").write_text(text)
    (package / "plugin.py").write_text(
        "import digest_pkg.dotted\nfrom digest_pkg.helper import boost\nfrom .relative import SCALE\n\n"
        "class Plugin:\n    def run(self):\n        from digest_pkg import late\n        return late\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        from digest_pkg.plugin import Plugin

        assert list(plugin_sources(Plugin)) == [f"digest_pkg.{name}" for name in ("chained", "dotted", "helper", "late", "plugin", "relative")]
        before = source_digest(Plugin)
        (package / "unused.py").write_text("VALUE = 2\n")
        (package / "__init__.py").write_text("from digest_pkg import unused, helper\n")
        assert source_digest(Plugin) == before
        for name in ("helper", "relative", "dotted", "chained"):
            (package / f"{name}.py").write_text((package / f"{name}.py").read_text() + "EDITED = True\n")
            assert source_digest(Plugin) != before, name
            before = source_digest(Plugin)
    finally:
        for name in [name for name in sys.modules if name.startswith("digest_pkg")]:
            del sys.modules[name]


def test_a_compiled_plugin_and_a_compiled_helper_have_digests_of_their_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin shipped without its source (here a ``.pyc``, as a Cython extension would be) is named by its
    file's bytes, not "unknown"; so is a compiled helper a source plugin imports: recompiling either changes it."""
    package = tmp_path / "compiled_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")

    def compile_without_source(name: str, text: str) -> None:
        source = tmp_path / f"{name}.py"
        source.write_text(text)
        py_compile.compile(str(source), cfile=str(package / f"{name}.pyc"), doraise=True)
        source.unlink()

    compile_without_source("helper", "SCALE = 2\n")
    compile_without_source("shipped", "class Shipped:\n    pass\n")
    (package / "plugin.py").write_text("from compiled_pkg.helper import SCALE\n\nclass Plugin:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        from compiled_pkg.plugin import Plugin
        from compiled_pkg.shipped import Shipped

        assert list(plugin_sources(Plugin)) == ["compiled_pkg.helper", "compiled_pkg.plugin"]
        assert list(plugin_sources(Shipped)) == ["compiled_pkg.shipped"] and source_digest(Shipped) != "unknown"
        before = source_digest(Plugin), source_digest(Shipped)
        compile_without_source("helper", "SCALE = 3\n")
        compile_without_source("shipped", "class Shipped:\n    size = 1\n")
        assert source_digest(Plugin) != before[0] and source_digest(Shipped) != before[1]
    finally:
        for name in [name for name in sys.modules if name.startswith("compiled_pkg")]:
            del sys.modules[name]


def test_a_digest_reads_the_code_not_its_comments_docstrings_or_layout(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text('"""A module."""\n\nclass Boost:\n    """Doubles."""\n\n    def __call__(self, x):\n        return 2 * x\n')
    before = sources_digest({"module": module})
    module.write_text('"""Edited."""\nclass Boost:  # a comment\n    """Edited too."""\n    def __call__(self, x):\n\n        return (2 * x)\n')
    assert sources_digest({"module": module}) == before
    module.write_text(module.read_text().replace("2 * x", "3 * x"))
    assert sources_digest({"module": module}) != before
    module.write_text("def half_written(:\n")  # a module being edited is read as it is
    broken = sources_digest({"module": module})
    module.write_text("def half_written(x:\n")
    assert sources_digest({"module": module}) != broken


def test_the_code_form_leaves_out_what_python_versions_add_or_write_differently() -> None:
    """Python 3.12 added ``type_params`` to every function (``ast.dump`` shows it empty) and writes f-strings back
    with other quotes (``ast.unparse``); the form a digest reads sets neither, so one code has one digest."""
    code = "def f(x):\n    return f\"{', '.join(x)}\"\n"
    assert tree_text(ast.parse(code)) == (
        "Module(body=[FunctionDef(name='f', args=arguments(args=[arg(arg='x')]), body=[Return(value=JoinedStr(values="
        "[FormattedValue(value=Call(func=Attribute(value=Constant(value=', '), attr='join', ctx=Load()), "
        "args=[Name(id='x', ctx=Load())]), conversion=-1)]))])])"
    )
    spec = ast.parse('f"{x:>{w}}"')  # Python 3.12 parses its format spec with an empty constant at the end
    spec_312 = ast.parse('f"{x:>{w}}"')
    spec_312.body[0].value.values[0].format_spec.values.append(ast.Constant(value=""))
    assert tree_text(spec_312) == tree_text(spec) and "''" not in tree_text(spec)
    assert tree_text(ast.parse('["", x]')) != tree_text(ast.parse("[x]"))  # an empty string elsewhere is code


def test_benchbds_own_code_names_every_cell_and_model(tiny_signs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A harness change (a draw, a metric, the trainer) recomputes a resumed run's cells and models, as a plugin's
    change does; the draws stay the draws."""
    sources = harness_sources()
    assert {"benchbd.harness.cells", "benchbd.harness.units.model", "benchbd.training.trainer", "benchbd.training.adversarial"} <= set(sources)
    assert not any(name.startswith(("benchbd.cli", "benchbd.leaderboard")) for name in sources)
    cells = plan(tiny_signs, attacks=["patch"], defenses=["aegis"])
    group = cells.groups[0]
    before = cells.cell_hash(group, "aegis"), cells.model_key(group), cells.stream(group, "defense", "aegis").integers(2**32)
    monkeypatch.setattr("benchbd.harness.plan.harness_digest", lambda: "edited")
    after = cells.cell_hash(group, "aegis"), cells.model_key(group), cells.stream(group, "defense", "aegis").integers(2**32)
    assert before[0] != after[0] and before[1] != after[1] and before[2] == after[2]


def test_a_resumed_blind_record_equals_a_fresh_one(tiny_signs: Path, tmp_path: Path) -> None:
    """What the blind attack measured about its training comes back with the cached model."""
    argv = ["matrix", "--dataset", f"npz:{tiny_signs}", "--attacks", "blind", "--device", "cpu", "--profile", "cpu", "--epochs", "2"]
    assert main([*argv, "--defenses", "none", "--out", str(tmp_path / "fresh")]) == 0
    assert main([*argv, "--defenses", "spectral", "--out", str(tmp_path / "resumed")]) == 0  # trains and caches
    assert main([*argv, "--defenses", "none", "--out", str(tmp_path / "resumed")]) == 0  # loads the cached model
    fresh, resumed = records_of(tmp_path / "fresh", "none"), records_of(tmp_path / "resumed", "none")
    assert fresh == resumed and fresh[0]["attack_stats"]["blind"]


def plan(tiny_signs: Path, **config: object) -> Plan:
    return Plan(MatrixConfig(dataset=f"npz:{tiny_signs}", device="cpu", **config), default_registry())


def test_a_multi_attack_set_is_checked_against_the_draws_it_can_expect_not_the_order_of_the_data() -> None:
    """Labels sorted by class, as real GTSRB's are: the patch attack's first 20 candidates are all of class 0, but
    its draw takes a quarter of them on average, leaving the clean-label attack the 10 it needs; 18 are too many."""
    y = np.repeat(np.arange(5), 20)
    def attacks(needed: int) -> list:
        return [PatchAttack(target=4, ratio=0.2), SinusoidAttack(target=0, ratio=needed / 100)]
    check_eligible(attacks(10), y)
    data = ImageData("sorted", np.zeros((100, 32, 32, 3), np.uint8), y, np.zeros((5, 32, 32, 3), np.uint8), np.arange(5), 5, "gtsrb")
    poisoned = poison_training_set(data, attacks(10), np.random.default_rng(0))
    assert np.bincount(poisoned.source[poisoned.source != CLEAN]).tolist() == [20, 10]
    with pytest.raises(BenchbdError, match="sinusoid: needs 18 examples to poison but the attacks before it in the set are expected to leave 15.0 of its 20"):
        check_eligible(attacks(18), y)


def test_the_examples_wanet_warps_with_noise_are_counted_as_taken() -> None:
    """Noise mode warps twice the backdoor count of other examples, from any class: after its 10 + 20, class 0's 20
    examples are expected to be 13.6 clean (17.5 counting the 10 alone), too few for a clean-label attack's 15."""
    y = np.repeat(np.arange(5), 20)
    def attacks(noise: bool) -> list:
        return [WaNetAttack(target=4, ratio=0.1, noise=noise, cross_ratio=2.0), SinusoidAttack(target=0, ratio=0.15)]
    check_eligible(attacks(False), y)
    with pytest.raises(BenchbdError, match="sinusoid: needs 15 examples to poison but the attacks before it in the set are expected to leave 13.6"):
        check_eligible(attacks(True), y)
    with pytest.raises(BenchbdError, match="wanet: changes 200 examples besides the 10 it poisons but the attacks before it"):
        check_eligible([WaNetAttack(target=4, ratio=0.1, noise=True, cross_ratio=20.0)], y)
    # The check counts what poisoning changes: 150 examples at 1% poison 2 and warp 4 more (not 4.5 - 2 rounded).
    y = np.repeat(np.arange(5), 30)
    wanet = WaNetAttack(target=4, ratio=0.01, noise=True, cross_ratio=2.0)
    data = ImageData("sorted", np.zeros((150, 32, 32, 3), np.uint8), y, np.zeros((5, 32, 32, 3), np.uint8), np.arange(5), 5, "gtsrb")
    wanet.prepare(data.x_train, y, 5, np.random.default_rng(0))
    poisoned = poison_training_set(data, [wanet], np.random.default_rng(0))
    assert (wanet.poison_count(150), wanet.extra_count(150)) == (2, 4) and poisoned.mask.sum() == 6


def test_the_multi_attack_cell_is_badloss_six_unless_named(tiny_signs: Path) -> None:
    every = plan(tiny_signs, attacks=["all"], defenses=["none"])
    assert [g.attacks for g in every.groups if g.mode == "multi"] == [PAPER_MULTI_ATTACKS]
    named = plan(tiny_signs, attacks=["patch", "invisible", "blind"], defenses=["none"])
    assert [g.attacks for g in named.groups if g.mode == "multi"] == [("patch", "invisible")]
    chosen = plan(tiny_signs, attacks=["all"], multi_attacks=["patch", "distributed-patch"], defenses=["none"])
    assert [g.attacks for g in chosen.groups if g.mode == "multi"] == [("patch", "distributed-patch")]


def test_cell_identity_and_streams_do_not_depend_on_the_other_cells(tiny_signs: Path) -> None:
    alone = plan(tiny_signs, attacks=["patch"], defenses=["abl"])
    crowded = plan(tiny_signs, attacks=["wanet", "patch"], defenses=["none", "spectral", "abl"])
    group = next(g for g in crowded.groups if g.attacks == ("patch",))
    assert alone.cell_hash(alone.groups[0], "abl") == crowded.cell_hash(group, "abl")
    assert alone.stream(alone.groups[0], "defense", "abl").integers(2**32) == crowded.stream(group, "defense", "abl").integers(2**32)
    assert crowded.stream(group, "defense", "abl").integers(2**32) != crowded.stream(group, "defense", "spectral").integers(2**32)


def test_seeds_split_over_runs_are_the_cells_of_one_run(tiny_signs: Path) -> None:
    """--first-seed: seeds 1-2 planned on their own have the hashes, models and draws of seeds 1-2 of --seeds 3."""
    whole = plan(tiny_signs, attacks=["patch"], defenses=["abl"], seeds=3)
    tail = plan(tiny_signs, attacks=["patch"], defenses=["abl"], seeds=2, first_seed=1)
    assert [g.seed for g in whole.groups] == [0, 1, 2] and tail.groups == whole.groups[1:]
    for group in tail.groups:
        assert tail.cell_hash(group, "abl") == whole.cell_hash(group, "abl")
        assert tail.model_key(group) == whole.model_key(group)
        assert tail.stream(group, "defense", "abl").integers(2**32) == whole.stream(group, "defense", "abl").integers(2**32)
    assert whole.cell_hash(whole.groups[0], "abl") != whole.cell_hash(whole.groups[1], "abl")


def test_a_defenses_parameters_change_its_cell_but_not_its_draws(tiny_signs: Path) -> None:
    default = plan(tiny_signs, attacks=["patch"], defenses=["aegis"])
    other_rule = plan(tiny_signs, attacks=["patch"], defenses=["aegis"], params={"aegis": {"rule": "median"}})
    group = default.groups[0]
    assert default.cell_hash(group, "aegis") != other_rule.cell_hash(other_rule.groups[0], "aegis")
    assert default.stream(group, "defense", "aegis").integers(2**32) == other_rule.stream(other_rule.groups[0], "defense", "aegis").integers(2**32)
    other_attack = plan(tiny_signs, attacks=["patch"], defenses=["aegis"], params={"patch": {"ratio": 0.05}})
    assert default.stream(group, "defense", "aegis").integers(2**32) != other_attack.stream(other_attack.groups[0], "defense", "aegis").integers(2**32)
