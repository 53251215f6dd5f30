"""The hook specifications: the whole contract between benchbd and its plugins.

A plugin is a module registered under the ``benchbd`` entry-point group; it implements any of these hooks with
``@benchbd.hookimpl``. Each hook is called once, when the process builds its registry, and returns a list;
benchbd collects the lists of all plugins. Names must be unique across plugins. The registry refuses, naming the
object and its distribution, an object that breaks its hook's contract (:func:`benchbd.registry.check_contract`);
``benchbd check-plugin NAME`` then runs an attack or defense through the contract on tiny data.
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
    :class:`benchbd.TrainingCodeAttack` (replaces the trainer's loss computation); the base sets ``kind``.
    Class attributes (``ClassVar``): ``name`` (unique, lower-case, dashes), ``description`` (one line),
    ``family_defaults`` (the paper's parameter values per dataset family). Dataclass fields are the parameters:
    the bases check ``ratio``, ``target`` and every ``Literal``-typed field (:class:`benchbd.params.Plugin`), the
    plugin's ``__post_init__`` the others, with :func:`benchbd.check`.

    How the harness calls an attack: it builds instances often (planning, hashing, every training) with
    :func:`benchbd.params.build`, from ``family_defaults`` under the user's values, then calls
    ``check_dataset``: construction must be cheap and free of side effects. Every training (the poisoned model,
    each malicious server) uses objects of its own: ``choose_target`` if ``target`` is ``None``, ``prepare``
    once, then ``poison`` once (data poisoning) or ``loss_computation`` once, wrapping the honest loss or another
    attack's (training code), then ``trigger``/``backdoor_labels`` to measure attack success and ``stats``.
    :meth:`~benchbd.Attack.trigger` must be the same transformation at test time as at training time, up to a
    boost with ``test_time=True`` that ``test_time_boost`` declares.
    """


@hookspec
def benchbd_defenses() -> list[type[Defense]]:
    """Return defense classes.

    Each is a dataclass subclassing the base of the unit it judges, which sets ``unit``:
    :class:`benchbd.ExampleDefense` (training examples), :class:`benchbd.ModelDefense` (trained models) or
    :class:`benchbd.TrainingRunDefense` (the servers that train a job); :class:`benchbd.NoDefense` is the
    undefended baseline. Class attributes ``name`` and ``description`` (one line, ``ClassVar``); dataclass fields
    are the parameters, checked as for attacks. Scores are finite, higher meaning more suspicious.

    How the harness calls a defense: one instance per matrix (and process), built before any training. Per cell
    (attack set and seed): ``score_examples`` once, with one score and flag per training example, then
    ``mitigate`` once (cells whose attacks poison no example are not applicable); ``training_loss`` (of the
    honest loss, and of the cell's poisoned one), then ``inspect_model`` once per judged model: the cell's
    backdoored model and each clean one, all trained with the defense's loss when ``training_loss`` returns one;
    ``judge_servers`` once, with one score and flag per server. Nothing is called on a ``NoDefense``.
    """


@hookspec
def benchbd_datasets() -> list[DatasetSpec]:
    """Return :class:`benchbd.DatasetSpec` objects; ``load`` (called once per matrix) returns a validated
    :class:`benchbd.ImageData`."""


@hookspec
def benchbd_models() -> list[ModelSpec]:
    """Return :class:`benchbd.ModelSpec` objects; ``build(num_classes)`` returns a fresh
    :class:`benchbd.ImageClassifier` for (N, 3, 32, 32) inputs in [0, 1]. It is called after
    ``torch.manual_seed`` for every model the harness trains, so its initial weights come from torch's generator."""
