"""benchbd: a benchmark suite for backdoor attacks and defenses on image classifiers.

The public API for plugin authors is what this module exports; see CONTRIBUTING.md. A plugin needs nothing from
benchbd's submodules.
"""

import pluggy

from benchbd.attacks import (
    Attack, DataPoisoningAttack, TrainingCodeAttack, apply_trigger_uint8, float_images, uint8_images,
)
from benchbd.data.images import DatasetSpec, ImageData, load_npz, load_or_prepare
from benchbd.data.synth_signs import generate_synth_signs
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
    no_progress,
)
from benchbd.errors import BenchbdError
from benchbd.harness.records import load_results
from benchbd.models import ImageClassifier, ModelSpec
from benchbd.params import check
from benchbd.training.profiles import PROFILES, TrainingProfile
from benchbd.training.trainer import Checkpoint, LossComputation, StepInfo, Trainer, cross_entropy_loss

hookimpl = pluggy.HookimplMarker("benchbd")

__all__ = [
    "PROFILES",
    "Attack",
    "BenchbdError",
    "Checkpoint",
    "DataPoisoningAttack",
    "DatasetSpec",
    "Defense",
    "ExampleContext",
    "ExampleDefense",
    "ExampleVerdict",
    "ImageClassifier",
    "ImageData",
    "LossComputation",
    "ModelContext",
    "ModelDefense",
    "ModelSpec",
    "ModelVerdict",
    "NoDefense",
    "Server",
    "StepInfo",
    "Trainer",
    "TrainingCodeAttack",
    "TrainingProfile",
    "TrainingRunContext",
    "TrainingRunDefense",
    "TrainingRunVerdict",
    "apply_trigger_uint8",
    "float_images",
    "uint8_images",
    "check",
    "cross_entropy_loss",
    "generate_synth_signs",
    "hookimpl",
    "load_npz",
    "load_or_prepare",
    "load_results",
    "no_progress",
]
