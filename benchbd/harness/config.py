"""What a matrix is asked to run: :class:`MatrixConfig` (from flags or a TOML file, :mod:`.config_file`), its checks,
and loading the dataset and building attacks as the matrix and ``benchbd show-attack`` do."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from benchbd import params as plugin_params
from benchbd.attacks import Attack, probe_multiplier
from benchbd.data.images import ImageData
from benchbd.errors import BenchbdError
from benchbd.registry import Registry
from benchbd.training.profiles import PRECISIONS, Precision

Mode = Literal["single", "multi", "both"]

#: The multi-attack training set of BaDLoss section 3.3, each attack at its per-dataset ratio: the multi-attack
#: cell of ``--attacks all`` (and of the GPU default). Other data attacks join a multi-attack set only when named.
PAPER_MULTI_ATTACKS = ("patch", "single-pixel", "blend-random", "blend-dimple", "sinusoid", "wanet")

#: ``-P simulation.FIELD=VALUE`` (or a ``[simulation]`` TOML table) sets the training-run unit's threat model.
SIMULATION = "simulation"

#: In an attack list, the cells trained on the clean training set: what a defense costs when nothing is poisoned
#: (the "0% poisoning" rows of the defenses SoK, arXiv 2511.13143).
NO_ATTACK = "none"


#: BaDLoss appendix A.1: C holds 2n bona fide clean examples, n = 250 (section 3.2: 250 clean and 250 backdoor probes).
PROBES_PER_SET = 250


def trusted_count(attacks: list[Attack], single_attack: bool) -> int:
    """BaDLoss's 2n trusted examples: n = 250, times :func:`~benchbd.attacks.probe_multiplier` (section 5.1: three
    times as many probes against the warping attack alone)."""
    return 2 * PROBES_PER_SET * probe_multiplier(attacks, single_attack)


@dataclass(frozen=True)
class Block:
    """One attack × defense product of a matrix: each attack of ``attacks`` alone (mode ``single``), the data
    attacks in one training set (``multi``; ``multi_attacks`` chooses them), or both, against every defense of
    ``defenses``. A matrix is one block (the flags) or several (:data:`CPU_DEMO`, a TOML file's ``[[blocks]]``);
    an attack set that several blocks name is one poisoned model that all their defenses judge."""

    attacks: tuple[str, ...]
    defenses: tuple[str, ...]
    mode: Mode = "single"
    multi_attacks: tuple[str, ...] | None = None


@dataclass
class MatrixConfig:
    """Everything that defines a matrix. ``None`` is the default. With a GPU: ``synth-signs``, the ``fast``
    profile, every registered attack and defense (``["all"]``), mode ``both``, 4 clean models. On a CPU with
    neither attacks, defenses nor blocks named: :data:`CPU_DEMO`; with some named, as on a GPU.
    ``multi_attacks``: the data attacks of the multi-attack cell (default: :data:`PAPER_MULTI_ATTACKS` with
    ``all``, else the named data attacks). ``blocks``: several products instead of ``attacks`` × ``defenses``
    (:class:`Block`). ``trusted``: how many clean training examples the defender holds (default: BaDLoss's 2n,
    see :func:`trusted_count`). ``epochs``: train every model of the matrix this many epochs instead of the
    profile's (the profile is then recorded as ``NAME (epochs=N)``). ``precision``: ``auto``, ``fp32`` or ``bf16``
    instead of the profile's (recorded as ``NAME (precision=P)``; :class:`TrainingProfile`). ``seeds``:
    how many seeds, from ``first_seed`` on (a seed's cells are the same whichever run plans them)."""

    dataset: str | None = None
    model: str | None = None
    attacks: list[str] | None = None
    defenses: list[str] | None = None
    multi_attacks: list[str] | None = None
    blocks: list[Block] | None = None
    seeds: int = 1
    first_seed: int = 0
    mode: Mode | None = None
    profile: str | None = None
    device: str = "auto"
    out: Path | None = None
    data_root: Path | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    cell_timeout: float | None = None
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    plugins: tuple[str, ...] = ()
    clean_models: int | None = None
    trusted: int | None = None
    epochs: int | None = None
    precision: Precision | None = None


#: Seed s's clean model i trains with ``CLEAN_MODEL_SEED * (s + 1) + i`` (ours); the cells of seed s train with s.
#: Seeds stay under it and ``--clean-models`` at most it, so that no clean model trains with a cell's seed or
#: another clean model's.
CLEAN_MODEL_SEED = 10_000

#: The defaults on a GPU (and on a CPU once attacks or defenses are named).
DEFAULTS: dict[str, Any] = {"dataset": "synth-signs", "profile": "fast", "mode": "both", "clean_models": 4}

#: ``benchbd matrix`` with nothing named on a CPU: every built-in attack and defense of the three units on 10
#: synth-signs classes in minutes on 2 cores, a demo scale that the tables' header names (docs/findings.md has
#: the measurements behind it). One-attack tables: patch and the multi-attack set of BaDLoss's six against every
#: example-level defense; each other attack undefended; patch, distributed-patch and blind against the model
#: defenses (2 clean models); patch and blind against RTTD.
CPU_DEMO = MatrixConfig(
    dataset="synth-signs:classes=10",
    profile="cpu",
    clean_models=2,
    blocks=[
        Block(("patch",), ("none", "badloss", "neural-cleanse", "activation-clustering", "spectral", "frequency", "abl"),
              "both", PAPER_MULTI_ATTACKS),
        Block(("single-pixel", "blend-random", "blend-dimple", "sinusoid", "wanet", "invisible", "distributed-patch", "blind"), ("none",)),
        Block(("patch", "distributed-patch", "blind"), ("neural-cleanse-model",)),
        Block(("patch", "distributed-patch"), ("aegis",)),
        Block(("patch", "blind"), ("rttd",)),
    ],
    params={
        # The attacks, not the defenses, are set for the scale: the papers' ratios poison 42-170 of these images, too
        # few for most triggers to be learned in 8 epochs; ratios and the blends' alpha raised until each is
        # (docs/findings.md), the six together 37% of the set. The defenses run at their papers' settings but for
        # AEGIS's budget:
        "patch": {"ratio": 0.03}, "single-pixel": {"ratio": 0.08}, "distributed-patch": {"ratio": 0.02},
        "blend-random": {"ratio": 0.05, "alpha": 0.15}, "blend-dimple": {"ratio": 0.05, "alpha": 0.05},
        "wanet": {"strength": 2.0, "ratio": 0.15}, "invisible": {"ratio": 0.1}, "blind": {"mgda_every": 10},
        # one PGD step instead of 7 (FGSM with a random start, step 1.25 ε, Wong et al. 2020) and 50 seeds a class
        # instead of 500, for time (docs/findings.md, "The CPU demo", has the cost). Blind balances its losses by
        # MGDA every 10th batch, not every batch.
        "aegis": {"train_steps": 1, "train_step_size": 10 / 255, "seeds": 50, "class_images": 50},
    },
)


def with_defaults(config: MatrixConfig, gpu: bool) -> MatrixConfig:
    """``config`` with every ``None`` default filled in: :data:`CPU_DEMO` on a CPU when it names neither attacks,
    defenses nor blocks (its plugin parameters under the user's), else :data:`DEFAULTS` and ``["all"]``."""
    if config.blocks is not None and (config.attacks or config.defenses or config.multi_attacks or config.mode):
        raise BenchbdError("blocks replace attacks, defenses, multi_attacks and mode; give one or the other")
    if not gpu and config.attacks is None and config.defenses is None and config.blocks is None:
        if config.mode or config.multi_attacks:
            raise BenchbdError("--mode and --multi-attacks need --attacks or --defenses on a CPU: without them the "
                               "matrix is the CPU demo, which sets its own")
        demo = {key: getattr(CPU_DEMO, key) for key in ("dataset", "profile", "clean_models") if getattr(config, key) is None}
        params = {name: {**CPU_DEMO.params.get(name, {}), **config.params.get(name, {})} for name in {*CPU_DEMO.params, *config.params}}
        return replace(config, blocks=CPU_DEMO.blocks, params=params, **demo)
    defaults: dict[str, Any] = dict(DEFAULTS)
    if config.blocks is None:
        defaults.update(attacks=["all"], defenses=["all"])
    else:
        del defaults["mode"]
    filled = {key: value for key, value in defaults.items() if getattr(config, key) is None}
    return replace(config, **filled)


def load_dataset(registry: Registry, spec: str, data_root: Path) -> ImageData:
    """Load ``NAME`` or ``NAME:ARGUMENT`` (``npz:PATH``, ``gtsrb:every=5``)."""
    name, _, argument = spec.partition(":")
    dataset = registry.dataset(name)
    if dataset.argument == "required" and not argument:
        raise BenchbdError(f"dataset '{name}' needs an argument: {name}:{dataset.argument_help or 'ARGUMENT'}")
    if argument and dataset.argument == "none":
        raise BenchbdError(f"dataset '{name}' takes no argument (got '{spec}')")
    return dataset.load(argument or None, data_root)


def build_attack(registry: Registry, name: str, data: ImageData, values: dict[str, Any]) -> Attack:
    """The attack ``name`` with the paper's defaults for the dataset's family under the user's ``values``."""
    cls = registry.attack(name)
    attack = plugin_params.build(cls, {**cls.family_defaults.get(data.family, {}), **values})
    attack.check_dataset(data.num_classes, data.image_shape)
    return attack


def check_config(config: MatrixConfig) -> None:
    """Refuse settings no matrix can run with, one line naming the option."""
    if config.seeds < 1:
        raise BenchbdError(f"--seeds must be at least 1; got {config.seeds}")
    if config.first_seed < 0:
        raise BenchbdError(f"--first-seed must be at least 0; got {config.first_seed}")
    if config.first_seed + config.seeds > CLEAN_MODEL_SEED:
        raise BenchbdError(f"--first-seed plus --seeds must be at most {CLEAN_MODEL_SEED:,} (the clean models' seeds "
                           f"start there); got {config.first_seed} + {config.seeds}")
    if config.executor not in ("local", "ray"):
        raise BenchbdError(f"executor must be local or ray; got {config.executor!r}")
    if config.mode not in (None, "single", "multi", "both"):
        raise BenchbdError(f"mode must be single, multi or both; got {config.mode!r}")
    if config.clean_models is not None and config.clean_models < 1:
        raise BenchbdError(f"--clean-models must be at least 1; got {config.clean_models}")
    if config.clean_models is not None and config.clean_models > CLEAN_MODEL_SEED:
        raise BenchbdError(f"--clean-models must be at most {CLEAN_MODEL_SEED:,}; got {config.clean_models}")
    if config.cell_timeout is not None and config.cell_timeout <= 0:
        raise BenchbdError(f"--cell-timeout must be positive; got {config.cell_timeout}")
    if config.trusted is not None and config.trusted < 2:
        raise BenchbdError(f"--trusted must be at least 2; got {config.trusted}")
    if config.epochs is not None and config.epochs < 1:
        raise BenchbdError(f"--epochs must be at least 1; got {config.epochs}")
    if config.precision not in (None, *PRECISIONS):
        raise BenchbdError(f"precision must be {', '.join(PRECISIONS)}; got {config.precision!r}")


