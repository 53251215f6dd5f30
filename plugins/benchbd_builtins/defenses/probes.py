"""BaDLoss's probe examples (appendix A.1), shared by every defense that models attacks with them.

The defender overwrites trusted clean examples of the training set with three probe sets: clean probes (left
as they are), backdoor probes (a defender-chosen trigger, relabelled to one probe class) and mislabelled probes
(examples given a random wrong label); a clean-label probe trigger (sinusoid) instead goes on examples of one
class and keeps their labels. In the one-attack setting the backdoor probe mimics the attack in
another place (section 5.1: :meth:`DataPoisoningAttack.probe`); in the multi-attack setting it is always the
patch flipped to the opposite corner (section 5.2). Frequency analysis trains on the same probes (section 4.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbd import DataPoisoningAttack, ExampleContext
from benchbd.attacks import apply_trigger_uint8
from benchbd.errors import BenchbdError
from benchbd_builtins.attacks.patch import PatchAttack


@dataclass
class ProbeSet:
    """The training set with probes written in, and where they are."""

    x: np.ndarray
    y: np.ndarray
    clean: np.ndarray
    backdoor: np.ndarray
    mislabeled: np.ndarray
    trigger: DataPoisoningAttack

    @property
    def indices(self) -> np.ndarray:
        return np.concatenate([self.clean, self.backdoor, self.mislabeled])

    @property
    def anomalous(self) -> np.ndarray:
        """For every probe in :attr:`indices` order: False for clean probes, True for backdoor and mislabelled."""
        return np.concatenate([np.zeros(len(self.clean), bool), np.ones(len(self.backdoor) + len(self.mislabeled), bool)])


def probe_trigger(context: ExampleContext, rng: np.random.Generator) -> DataPoisoningAttack:
    """The defender's trigger: the attack's probe variant with one data attack, else the flipped patch."""
    attacks = [a for a in context.attacks if isinstance(a, DataPoisoningAttack)]
    if context.single_attack and len(attacks) == 1:
        try:
            return attacks[0].probe(rng)
        except NotImplementedError:
            pass
    return PatchAttack(corner="top-left")


def inject_probes(
    context: ExampleContext,
    rng: np.random.Generator,
    count: int = 250,
    backdoor_count: int | None = None,
) -> ProbeSet:
    """Write ``count`` clean, ``backdoor_count`` (default ``count``) backdoor and ``count`` mislabelled probes
    into a copy of the training set; clean and backdoor probes come from ``context.trusted_clean``."""
    backdoor_count = count if backdoor_count is None else backdoor_count
    trusted = rng.permutation(context.trusted_clean)
    if len(trusted) < count + backdoor_count:
        raise BenchbdError(
            f"probes: {count + backdoor_count} trusted clean examples needed, {len(trusted)} available"
        )
    x, y = context.x_train.copy(), context.y_train.copy()
    num_classes = context.data.num_classes
    trigger = probe_trigger(context, rng)
    clean = np.sort(trusted[:count])
    pool = trusted[count:]
    if trigger.dirty_label:
        probe_class = int(rng.integers(num_classes))
        backdoor = np.sort(pool[y[pool] != probe_class][:backdoor_count])
    else:
        # A clean-label trigger (sinusoid) goes on examples of one class, labels kept: the trusted class with
        # the most examples, as BaDLoss's code takes a class with at least 1,000 images on GTSRB.
        probe_class = int(np.bincount(y[pool], minlength=num_classes).argmax())
        backdoor = np.sort(pool[y[pool] == probe_class][:backdoor_count])
    x[backdoor] = apply_trigger_uint8(trigger, x[backdoor])
    y[backdoor] = probe_class
    others = np.setdiff1d(np.arange(len(y)), np.concatenate([clean, backdoor]))
    mislabeled = np.sort(rng.choice(others, size=count, replace=False))
    y[mislabeled] = (y[mislabeled] + rng.integers(1, num_classes, size=count)) % num_classes
    return ProbeSet(x, y, clean, backdoor, mislabeled, trigger)
