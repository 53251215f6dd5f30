"""The hook specifications: the whole contract between benchbd and its plugins.

A plugin is a module registered under the ``benchbd`` entry-point group; it implements any of these hooks with
``@benchbd.hookimpl``. Each hook returns a list; benchbd collects the lists of all plugins. Names must be unique
across plugins (the registry refuses duplicates, naming both distributions).
"""

from __future__ import annotations

import pluggy

from benchbd.attacks import Attack
from benchbd.data.images import DatasetSpec
from benchbd.defenses import Defense
from benchbd.models import ModelSpec

hookspec = pluggy.HookspecMarker("benchbd")


@hookspec
def benchbd_attacks() -> list[type[Attack]]:
    """Return attack classes.

    Each is a dataclass subclassing :class:`benchbd.DataPoisoningAttack` (poisons training examples) or
    :class:`benchbd.Attack` with ``kind = "training-code"`` (replaces the trainer's loss computation). Class
    attributes ``name`` (unique, lower-case, dashes), ``description`` (one line) and ``family_defaults`` (the
    paper's parameter values per dataset family); dataclass fields are the parameters, validated in
    ``__post_init__`` with :func:`benchbd.params.check`. :meth:`~benchbd.Attack.trigger` must be the same
    transformation at test time as at training time (up to a documented ``test_time`` boost).
    """


@hookspec
def benchbd_defenses() -> list[type[Defense]]:
    """Return defense classes.

    Each is a dataclass subclassing the base of the unit it judges: :class:`benchbd.ExampleDefense` (scores
    every training example; the harness measures detection against the poison mask, removes the flagged
    examples and retrains). Class attributes ``name`` and ``description`` (one line); dataclass fields are the
    parameters. Higher scores mean more suspicious; scores must be finite, one per training example.
    """


@hookspec
def benchbd_datasets() -> list[DatasetSpec]:
    """Return :class:`benchbd.DatasetSpec` objects; ``load`` returns a validated :class:`benchbd.ImageData`."""


@hookspec
def benchbd_models() -> list[ModelSpec]:
    """Return :class:`benchbd.ModelSpec` objects; ``build(num_classes)`` returns a fresh
    :class:`benchbd.ImageClassifier` for (N, 3, 32, 32) inputs in [0, 1]."""
