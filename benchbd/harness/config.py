"""What a matrix is asked to run: :class:`MatrixConfig` (from flags or a TOML file, :mod:`.config_file`), its checks,
and loading the dataset and building attacks as the matrix and ``benchbd show-attack`` do."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchbd import params as plugin_params
from benchbd.attacks import Attack, DataPoisoningAttack
from benchbd.data.images import ImageData
from benchbd.errors import BenchbdError
from benchbd.registry import Registry

Mode = Literal["single", "multi", "both"]

#: What a matrix runs when no attacks or defenses are named and there is no GPU: a few minutes on 2 CPU cores.
#: With a GPU the default is every registered attack and defense.
CPU_DEFAULTS: dict[str, list[str]] = {"attacks": ["patch"], "defenses": ["none", "spectral"]}

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
    """BaDLoss's 2n trusted examples: n = 250, times the attack's ``probe_multiplier`` in the one-attack setting
    (section 5.1: three times as many probes against the warping attack)."""
    one = attacks[0] if single_attack and attacks else None
    multiplier = one.probe_multiplier if isinstance(one, DataPoisoningAttack) else 1
    return 2 * PROBES_PER_SET * multiplier


@dataclass
class MatrixConfig:
    """Everything that defines a matrix. ``None`` for attacks or defenses is the default: all registered ones on
    a GPU, :data:`CPU_DEFAULTS` on a CPU; ``["all"]`` is every registered one. ``multi_attacks``: the data attacks
    of the multi-attack cell (default: :data:`PAPER_MULTI_ATTACKS` with ``all``, else the named data attacks).
    ``trusted``: how many clean training examples the defender holds (default: BaDLoss's 2n, see
    :func:`trusted_count`). ``epochs``: train every model of the matrix this many
    epochs instead of the profile's (the profile is then recorded as ``NAME (epochs=N)``)."""

    dataset: str = "synth-signs"
    model: str | None = None
    attacks: list[str] | None = None
    defenses: list[str] | None = None
    multi_attacks: list[str] | None = None
    seeds: int = 1
    mode: Mode = "both"
    profile: str = "fast"
    device: str = "auto"
    out: Path | None = None
    data_root: Path | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    cell_timeout: float | None = None
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    plugins: tuple[str, ...] = ()
    clean_models: int = 4
    trusted: int | None = None
    epochs: int | None = None


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
    if config.executor not in ("local", "ray"):
        raise BenchbdError(f"executor must be local or ray; got {config.executor!r}")
    if config.mode not in ("single", "multi", "both"):
        raise BenchbdError(f"mode must be single, multi or both; got {config.mode!r}")
    if config.clean_models < 1:
        raise BenchbdError(f"--clean-models must be at least 1; got {config.clean_models}")
    if config.cell_timeout is not None and config.cell_timeout <= 0:
        raise BenchbdError(f"--cell-timeout must be positive; got {config.cell_timeout}")
    if config.trusted is not None and config.trusted < 2:
        raise BenchbdError(f"--trusted must be at least 2; got {config.trusted}")
    if config.epochs is not None and config.epochs < 1:
        raise BenchbdError(f"--epochs must be at least 1; got {config.epochs}")


