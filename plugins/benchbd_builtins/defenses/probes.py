"""BaDLoss's probe examples (appendix A.1), shared by every defense that models attacks with them.

The defender overwrites examples of the training set with three probe sets: clean probes (trusted examples left
as they are), backdoor probes (trusted examples with a defender-chosen trigger, relabelled to one probe class)
and mislabelled probes (examples of the rest of the dataset given a random wrong label); a clean-label probe
trigger (sinusoid) instead goes on trusted examples of one class and keeps their labels. In the one-attack
setting the backdoor probe mimics the attack in another place (section 5.1: :meth:`DataPoisoningAttack.probe`);
in the multi-attack setting it is always the patch flipped to the opposite corner (section 5.2). Frequency
analysis trains on the same probes (sections 4.2, 5.1): both draw them from ``ExampleContext.probe_seed``.
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
    """The training set with probes written in, where they are, and what fell short of the counts asked for."""

    x: np.ndarray
    y: np.ndarray
    clean: np.ndarray
    backdoor: np.ndarray
    mislabeled: np.ndarray
    trigger: DataPoisoningAttack
    warnings: list[str]

    @property
    def indices(self) -> np.ndarray:
        return np.concatenate([self.clean, self.backdoor, self.mislabeled])

    @property
    def anomalous(self) -> np.ndarray:
        """For every probe in :attr:`indices` order: False for clean probes, True for backdoor and mislabelled."""
        return np.concatenate([np.zeros(len(self.clean), bool), np.ones(len(self.backdoor) + len(self.mislabeled), bool)])


@dataclass(frozen=True)
class ProbeTrigger:
    """The defender's trigger; ``crafted_for``: the class it was crafted toward, when it has one of its own
    (:meth:`DataPoisoningAttack.probe`: a ``target`` other than the attack's), else None; ``warning``: set when the
    attack has no probe variant and the flipped patch stands in."""

    attack: DataPoisoningAttack
    crafted_for: int | None = None
    warning: str | None = None


def probe_trigger(context: ExampleContext, rng: np.random.Generator) -> ProbeTrigger:
    """The attack's probe variant with one data attack (section 5.1), else the flipped patch (section 5.2)."""
    attacks = [a for a in context.attacks if isinstance(a, DataPoisoningAttack)]
    if context.single_attack and len(attacks) == 1:
        try:
            variant = attacks[0].probe(rng)
        except NotImplementedError:
            return ProbeTrigger(PatchAttack().probe(rng), warning=f"{attacks[0].name} has no probe variant: the flipped patch instead")
        return ProbeTrigger(variant, crafted_for=variant.target if variant.target != attacks[0].target else None)
    return ProbeTrigger(PatchAttack().probe(rng))


def inject_probes(context: ExampleContext, n: int) -> ProbeSet:
    """Appendix A.1 steps 1-4 with ``context.probe_seed``'s draws (the same for every defense of the cell's
    group): n clean probes P1 and n backdoor probes P2 from the trusted examples C, n mislabelled probes P3 from
    the rest of the dataset D, written into a copy of the training set. With fewer than 2n trusted examples, P1
    takes half of them and P3 as many as P1 (ours: the k-NN's clean and anomalous references keep their balance).

    P2 carries the probe trigger and the probe class's label: a class drawn at random, or the class the trigger was
    crafted toward (the adversarial perturbation's); a clean-label probe trigger (sinusoid) goes on
    trusted examples of one class, labels kept: the class with the most trusted examples, as BaDLoss's code takes
    a class with at least 1,000 images on GTSRB. Sets smaller than n (a trusted set under 2n, a class-bound
    trigger) are kept and named in ``warnings``.
    """
    rng = np.random.default_rng(context.probe_seed)
    trusted = rng.permutation(context.trusted_clean)
    x, y = context.x_train.copy(), context.y_train.copy()
    num_classes = context.data.num_classes
    probe = probe_trigger(context, rng)
    trigger = probe.attack
    clean = np.sort(trusted[: min(n, len(trusted) // 2)])
    pool = trusted[len(clean):]
    if trigger.dirty_label:
        probe_class = int(rng.integers(num_classes)) if probe.crafted_for is None else probe.crafted_for
        backdoor = np.sort(pool[:n])
    else:
        probe_class = int(np.bincount(y[pool], minlength=num_classes).argmax())
        backdoor = np.sort(pool[y[pool] == probe_class][:n])
    x[backdoor] = apply_trigger_uint8(trigger, x[backdoor])
    y[backdoor] = probe_class
    others = np.setdiff1d(np.arange(len(y)), context.trusted_clean)
    mislabeled = np.sort(rng.choice(others, size=min(len(clean), len(others)), replace=False))
    y[mislabeled] = (y[mislabeled] + rng.integers(1, num_classes, size=len(mislabeled))) % num_classes
    warnings = [
        f"{len(found)} {kind} probes of the {n} asked for ({why})"
        for found, kind, why in (
            (clean, "clean", f"{len(context.trusted_clean)} trusted examples"),
            (backdoor, "backdoor", f"{len(context.trusted_clean)} trusted examples" if trigger.dirty_label else f"the clean-label trigger needs examples of class {probe_class}"),
            (mislabeled, "mislabelled", "as many as the clean probes" if len(mislabeled) == len(clean) else f"{len(others)} untrusted examples"),
        )
        if len(found) < n
    ] + ([probe.warning] if probe.warning else [])
    if min(len(clean), len(backdoor), len(mislabeled)) < 2:
        raise BenchbdError(f"probes: too few probes ({len(clean)} clean, {len(backdoor)} backdoor, {len(mislabeled)} mislabelled)")
    return ProbeSet(x, y, clean, backdoor, mislabeled, trigger, warnings)
