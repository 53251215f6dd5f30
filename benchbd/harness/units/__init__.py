"""The three units a defense can judge (docs/architecture.md), one module each: :mod:`.example` (training
examples), :mod:`.model` (trained models), :mod:`.training_run` (the servers of a training run).

Each module's ``judge(bench, state, defense, name)`` builds the defense's context, checks its verdict and returns
the record fields it measured; the model and training-run modules also name their leaderboard columns. The
harness picks the module by the defense's base class, the one source of a defense's unit.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from benchbd.defenses import Defense, ExampleDefense, ModelDefense, NoDefense, TrainingRunDefense
from benchbd.errors import BenchbdError
from benchbd.harness.units import example, model, training_run
from benchbd.harness.workbench import PoisonedGroup, Workbench


UNITS: dict[type[Defense], ModuleType] = {ExampleDefense: example, ModelDefense: model, TrainingRunDefense: training_run}


def judge(bench: Workbench, state: PoisonedGroup, defense: Defense, name: str) -> dict[str, Any]:
    """The record fields of one cell: the undefended baseline measures nothing beyond the group's summary."""
    if isinstance(defense, NoDefense):
        return {}
    for base, unit in UNITS.items():
        if isinstance(defense, base):
            return unit.judge(bench, state, defense, name)
    raise BenchbdError(f"defense '{name}' subclasses none of NoDefense, ExampleDefense, ModelDefense, TrainingRunDefense")
