"""benchbd: a benchmark suite for backdoor attacks and defenses on image classifiers.

The public API for plugin authors is what this module exports; see CONTRIBUTING.md.
"""

import pluggy

from benchbd.attacks import Attack, DataPoisoningAttack
from benchbd.data.images import DatasetSpec, ImageData
from benchbd.defenses import (
    Defense,
    ExampleContext,
    ExampleDefense,
    ExampleVerdict,
    ModelContext,
    ModelDefense,
    ModelVerdict,
    NoDefense,
    Server,
    TrainingRunContext,
    TrainingRunDefense,
    TrainingRunVerdict,
)
from benchbd.errors import BenchbdError
from benchbd.harness.table import load_results
from benchbd.models import ImageClassifier, ModelSpec

hookimpl = pluggy.HookimplMarker("benchbd")

__all__ = [
    "Attack",
    "BenchbdError",
    "DataPoisoningAttack",
    "DatasetSpec",
    "Defense",
    "ExampleContext",
    "ExampleDefense",
    "ExampleVerdict",
    "ImageClassifier",
    "ImageData",
    "ModelContext",
    "ModelDefense",
    "ModelSpec",
    "ModelVerdict",
    "NoDefense",
    "Server",
    "TrainingRunContext",
    "TrainingRunDefense",
    "TrainingRunVerdict",
    "hookimpl",
    "load_results",
]
