"""Planning a matrix: what its cells are, how each is named (hashed), and where each cell's randomness comes from.

A cell is (attack set, seed, defense). Cells that share an attack set and seed form a :class:`Group`: one poisoned
model that every defense of the group judges. A cell's hash names everything its record depends on: the group's
dataset, model, profile, attacks and their parameters, the defense and its parameters, what the harness gives the
defense's unit (trusted-set size, number of clean models, simulation), and the code of every plugin involved
(distribution, version and :func:`benchbd.harness.digests.source_digest`) and of benchbd itself (its version and
:func:`benchbd.harness.digests.harness_digest`). A finished cell whose hash is in ``results.jsonl`` is skipped on
resume; a changed plugin, harness or setting gets a new hash, so its cells are computed again.

Every random draw of a cell comes from :meth:`Plan.stream`, seeded by the seed, the cell's group, its defense's
name (not the defense's parameters) and the draw's purpose: a cell's record is the same whatever else runs, in
whatever order, resumed or not, locally or on Ray, and two parameter settings of one defense share its draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchbd import params as plugin_params
from benchbd.attacks import Attack, DataPoisoningAttack
from benchbd.data.images import default_data_root
from benchbd.defenses import Defense, ExampleDefense, ModelDefense, TrainingRunDefense
from benchbd.errors import BenchbdError
from benchbd.harness.config import (
    NO_ATTACK, PAPER_MULTI_ATTACKS, SIMULATION, Block, MatrixConfig, build_attack, check_config, load_dataset, with_defaults,
)
from benchbd.harness.digests import digest, harness_digest, source_digest
from benchbd.harness.poisoning import assign_targets, check_eligible
from benchbd.harness.servers import Simulation
from benchbd.registry import Registry
from benchbd.training.profiles import TrainingProfile, get_profile, with_options
from benchbd.training.trainer import resolve_device

@dataclass(frozen=True)
class Group:
    """Cells sharing one poisoned model: the same attacks (in one training set) and seed."""

    attacks: tuple[str, ...]
    mode: Literal["single", "multi"]
    seed: int

    @property
    def label(self) -> str:
        """The attack set as the progress and error lines name it."""
        return "+".join(self.attacks) or "no attack"


def random_stream(seed: int, identity: Any) -> np.random.Generator:
    """A generator seeded by ``seed`` and a digest of ``identity`` (any JSON-able description of what draws)."""
    return np.random.default_rng([seed, int(digest(identity), 16) % 2**32])


class Plan:
    """The cells of a :class:`MatrixConfig`: validated plugins, groups, hashes and random streams.

    Everything that can be refused is refused here, before any training: bad parameters, unknown names, a dataset
    with fewer than two classes, an attack without enough eligible examples for its ratio.
    """

    def __init__(self, config: MatrixConfig, registry: Registry) -> None:
        check_config(config)
        self.registry = registry
        self.device = resolve_device(config.device)
        self.config = config = with_defaults(config, gpu=self.device.type == "cuda")
        self.profile: TrainingProfile = with_options(get_profile(config.profile), config.epochs, config.precision)
        self.model_name = config.model or self.profile.model
        self.model_spec = registry.model(self.model_name)
        given = config.blocks or [Block(tuple(config.attacks), tuple(config.defenses), config.mode,
                                        tuple(config.multi_attacks) if config.multi_attacks else None)]
        self.blocks = [self._resolved(block) for block in given]
        self.attack_names = list(dict.fromkeys(n for b in self.blocks for n in (*b.attacks, *(b.multi_attacks or ()))))
        self.defense_names = list(dict.fromkeys(n for b in self.blocks for n in b.defenses))
        if NO_ATTACK in config.params:
            raise BenchbdError(f"'{NO_ATTACK}' (no attack) takes no parameters")
        unknown = sorted(set(config.params) - {*self.attack_names, *self.defense_names, SIMULATION})
        if unknown:
            raise BenchbdError(f"parameters given for {', '.join(unknown)}, which are not in this matrix")
        self.simulation = plugin_params.build(Simulation, config.params.get(SIMULATION, {}))
        self.data = load_dataset(registry, config.dataset, config.data_root or default_data_root())
        if self.data.num_classes < 2:
            raise BenchbdError(f"dataset {config.dataset} has {self.data.num_classes} class(es); a backdoor needs at least 2")
        self.defenses: dict[str, Defense] = {
            name: plugin_params.build(registry.defense(name), config.params.get(name, {})) for name in self.defense_names
        }
        self.cells = self._plan()
        for group in self.groups:  # every attack builds, and finds the examples its ratio needs
            attacks = self.attacks(group)
            assign_targets(attacks, self.data)
            check_eligible([a for a in attacks if isinstance(a, DataPoisoningAttack)], self.data.y_train)

    def _names(self, category: Literal["attacks", "defenses"], names: list[str]) -> list[str]:
        """The named plugins, checked; ``all`` is every registered one; ``none`` among attacks is
        :data:`NO_ATTACK`, the clean training set."""
        if names == ["all"]:
            return self.registry.names(category)
        if not names:
            raise BenchbdError(f"the list of {category} is empty")
        for name in names:
            if not (category == "attacks" and name == NO_ATTACK):
                self.registry.get(category, name)
        return list(dict.fromkeys(names))

    def _resolved(self, block: Block) -> Block:
        """``block`` with its names checked and ``all`` expanded, and its multi-attack set: the block's
        ``multi_attacks``, else :data:`PAPER_MULTI_ATTACKS` with ``all``, else its data attacks."""
        attacks = self._names("attacks", list(block.attacks))
        if block.multi_attacks:
            multi = [n for n in self._names("attacks", list(block.multi_attacks)) if n != NO_ATTACK]
        elif block.attacks == ("all",):
            multi = [name for name in PAPER_MULTI_ATTACKS if name in attacks]
        else:
            multi = [name for name in attacks if name != NO_ATTACK]
        multi = [name for name in multi if issubclass(self.registry.attack(name), DataPoisoningAttack)]
        if block.multi_attacks and len(multi) < 2:
            raise BenchbdError("--multi-attacks needs at least two data-poisoning attacks")
        if block.mode == "multi" and NO_ATTACK in attacks:
            raise BenchbdError(f"--attacks {NO_ATTACK} needs --mode single or both: no attack has nothing to put in one training set")
        if block.mode == "multi" and len(multi) < 2:
            raise BenchbdError("--mode multi needs at least two data-poisoning attacks")
        return Block(tuple(attacks), tuple(self._names("defenses", list(block.defenses))), block.mode,
                     tuple(multi) if block.mode != "single" and len(multi) >= 2 else None)

    def _plan(self) -> dict[Group, list[str]]:
        """Each group and the defenses that judge it, seed by seed and block by block; a group that several
        blocks share is one group."""
        cells: dict[Group, list[str]] = {}
        for seed in range(self.config.first_seed, self.config.first_seed + self.config.seeds):
            for block in self.blocks:
                groups = [Group(() if name == NO_ATTACK else (name,), "single", seed) for name in block.attacks] if block.mode != "multi" else []
                if block.multi_attacks:
                    groups.append(Group(block.multi_attacks, "multi", seed))
                for group in groups:
                    cells[group] = list(dict.fromkeys([*cells.get(group, []), *block.defenses]))
        return cells

    @property
    def setting(self) -> dict[str, str]:
        """The fields of every record that say what it was measured on: dataset, model, training profile."""
        return {"dataset": self.config.dataset, "model": self.model_name, "profile": self.profile.name}

    @property
    def groups(self) -> list[Group]:
        """The groups in the order they run: seed by seed, block by block."""
        return list(self.cells)

    # -- what a cell is --------------------------------------------------------------------------------------
    def attacks(self, group: Group) -> list[Attack]:
        """Fresh attack objects for one training of the group (never shared between trainings)."""
        return [build_attack(self.registry, name, self.data, self.config.params.get(name, {})) for name in group.attacks]

    def group_identity(self, group: Group) -> dict[str, Any]:
        """What the group's poisoned model depends on, code aside."""
        return {
            "dataset": self.config.dataset,
            "model": self.model_name,
            "profile": self.profile.as_dict(),
            "mode": group.mode,
            "seed": group.seed,
            "attacks": [[a.name, plugin_params.as_dict(a)] for a in self.attacks(group)],
        }

    def code(self, category: Literal["attacks", "defenses", "datasets", "models"], name: str) -> str:
        """Distribution, version and source digest of one plugin: ``benchbd 0.1.0 3f2a...`` (of a model or dataset,
        the source of its ``build`` or ``load`` function, not of benchbd's spec class)."""
        plugin = self.registry.get(category, name)
        if category == "models":
            plugin = plugin.build
        elif category == "datasets":
            plugin = plugin.load
        return f"{self.registry.provenance(category, name)} {source_digest(plugin)}"

    def group_code(self, group: Group) -> dict[str, Any]:
        """The code a group's poisoned model depends on: benchbd's (``0.1.0 <harness digest>``) and its dataset,
        model and attack plugins' (:meth:`code`)."""
        return {
            "benchbd": f"{metadata.version('benchbd')} {harness_digest()}",
            "dataset": self.code("datasets", self.config.dataset.partition(":")[0]),
            "model": self.code("models", self.model_name),
            "attacks": {name: self.code("attacks", name) for name in group.attacks},
        }

    def cell_identity(self, group: Group, defense: str) -> dict[str, Any]:
        """What a cell is: the group, the defense and its parameters (a training-run cell also the simulation)."""
        identity = {**self.group_identity(group), "defense": [defense, plugin_params.as_dict(self.defenses[defense])]}
        if isinstance(self.defenses[defense], TrainingRunDefense):
            identity[SIMULATION] = plugin_params.as_dict(self.simulation)
        return identity

    def draw_identity(self, group: Group, defense: str) -> dict[str, Any]:
        """What a cell's random draws depend on: its identity with the defense's name for the defense. Runs that
        differ only in a defense's parameters (two AEGIS rules, two NC budgets) then draw from the same stream
        (common random numbers, ours): where the parameters do not change what is drawn, both judge the same
        images, seeds and replicas, so the difference between their records is the parameters', not the draws'."""
        return {**self.cell_identity(group, defense), "defense": defense}

    def cell_settings(self, group: Group, defense: str) -> dict[str, int | None]:
        """The settings the harness gives the defense's unit beyond the cell's identity, as the user gave them:
        an example-level cell's ``--trusted`` (``None``: BaDLoss's 2n), a model-level cell's ``--clean-models``. In
        the hash and the record's ``params``, not in the random streams (a clean model's verdict does not change
        with how many others are judged)."""
        if isinstance(self.defenses[defense], ExampleDefense):
            return {"trusted": self.config.trusted}
        if isinstance(self.defenses[defense], ModelDefense):
            return {"clean_models": self.config.clean_models}
        return {}

    def cell_code(self, group: Group, defense: str) -> dict[str, Any]:
        return {**self.group_code(group), "defense": self.code("defenses", defense)}

    def cell_hash(self, group: Group, defense: str) -> str:
        return digest({**self.cell_identity(group, defense), **self.cell_settings(group, defense),
                       "code": self.cell_code(group, defense)})

    def model_key(self, group: Group, **training: Any) -> str:
        """The model cache's key for a model trained on the group's poisoned set (``training``: how, if not the
        profile's usual training)."""
        return digest({**self.group_identity(group), "code": self.group_code(group), **training})

    def stream(self, group: Group, purpose: str, defense: str | None = None) -> np.random.Generator:
        """The random stream of one purpose in one group (``defense`` given: in that cell)."""
        identity = self.draw_identity(group, defense) if defense else self.group_identity(group)
        return random_stream(group.seed, {**identity, "purpose": purpose})

    def poisoning_stream(self, group: Group) -> np.random.Generator:
        """The attacks' own draws (triggers, then the poisoned examples), the same for every training of the group."""
        return random_stream(group.seed, self.group_identity(group)["attacks"])

    # -- the whole matrix --------------------------------------------------------------------------------------
    @property
    def total_cells(self) -> int:
        return sum(len(defenses) for defenses in self.cells.values())

    def pending(self, finished: set[str]) -> list[tuple[Group, list[str]]]:
        """The groups with cells whose hash is not in ``finished``, and those cells' defenses."""
        work = []
        for group, defenses in self.cells.items():
            names = [d for d in defenses if self.cell_hash(group, d) not in finished]
            if names:
                work.append((group, names))
        return work

    def default_out(self) -> Path:
        name, _, argument = self.config.dataset.partition(":")
        dataset = Path(argument).stem if name == "npz" else self.config.dataset.replace(":", "-").replace(",", "-")
        base = get_profile(self.config.profile)
        options = "".join(
            suffix for suffix, changed in ((f"-{self.profile.epochs}epochs", self.profile.epochs != base.epochs),
                                           (f"-{self.profile.precision}", self.profile.precision != base.precision))
            if changed
        )
        return Path("runs") / f"{dataset}-{self.model_name}-{self.config.profile}{options}"

    def resolved_config(self) -> dict[str, Any]:
        return {
            "dataset": self.config.dataset,
            "model": self.model_name,
            "profile": self.profile.as_dict(),
            "attacks": {
                n: plugin_params.as_dict(build_attack(self.registry, n, self.data, self.config.params.get(n, {})))
                for n in self.attack_names if n != NO_ATTACK
            },
            "no_attack": NO_ATTACK in self.attack_names,
            "defenses": {n: plugin_params.as_dict(d) for n, d in self.defenses.items()},
            "blocks": [{"attacks": list(b.attacks), "defenses": list(b.defenses), "mode": b.mode,
                        "multi_attacks": list(b.multi_attacks or ())} for b in self.blocks],
            "cells": self.total_cells,
            SIMULATION: plugin_params.as_dict(self.simulation),
            "trusted": self.config.trusted,
            "clean_models": self.config.clean_models,
            "seeds": self.config.seeds,
            "first_seed": self.config.first_seed,
            "device": str(self.device),
        }
