"""``invisible``: invisible additive perturbation triggers (Zhong et al., CODASPY 2020, "Backdoor Embedding in
Convolutional Neural Network Models via Invisible Perturbation"), as AEGIS (Soremekun et al., section V-A,
"Invisible Backdoor Triggers") uses them.

Both kinds add one fixed perturbation δ, ‖δ‖∞ ≤ ε, to the whole image:

- ``static``: a pattern fixed before any training (Zhong's "patterned static" mask); here each pixel and channel
  moves by +ε or -ε, signs drawn from the rng: the largest energy (L2 = ε·√(3·H·W)) the L∞ budget allows.
- ``adversarial``: Zhong's "targeted adaptive" mask, a universal adversarial perturbation toward the target
  computed on a model the attacker trains himself. Here: a small-cnn surrogate trained with benchbd's trainer
  (``fast`` profile, CPU) on ``surrogate_size`` clean training images for ``surrogate_epochs`` epochs (the attacker
  knows part of the data, not the victim's model or training run), then ``uap_steps`` projected signed-gradient
  steps on δ minimising the surrogate's cross-entropy toward the target over the subset's non-target images. Zhong
  builds the mask with the universal-perturbation algorithm of Moosavi-Dezfooli et al. (2017), DeepFool steps over
  the images; we use targeted PGD under the L∞ bound, its common modern equivalent, so both kinds share one budget.

Poisoned examples are relabelled to the target (dirty label: AEGIS relabels every poisoned image to class 7, and
Zhong's attack is label-inconsistent too). AEGIS poisons 30% of the training set for these triggers ("in line with
the configuration in Zhong et al.") and uses the least intense triggers; ``ratio`` defaults to 0.3. ε is in 8-bit
intensity levels (8 means 8/255, the usual imperceptibility budget); the AEGIS text gives no ε and Zhong's full
text was not available to us, so 8 is our choice. AEGIS adds the poisoned copies to the training set; benchbd
poisons in place (the set keeps its size).

Probe variant (BaDLoss section 5.1): a new random static pattern, or a UAP toward another class on the same
surrogate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from benchbd import DataPoisoningAttack, ImageClassifier, check, float_images, hookimpl
from benchbd.errors import BenchbdError
from benchbd.training.profiles import PROFILES
from benchbd.training.trainer import Trainer
from benchbd_builtins.models import small_cnn

Perturbation = Literal["static", "adversarial"]
#: Images per projected gradient step of the UAP.
UAP_BATCH = 128


def static_pattern(shape: tuple[int, int, int], epsilon: float, rng: np.random.Generator) -> torch.Tensor:
    """A random ±``epsilon`` pattern of shape (3, H, W) (``epsilon`` in [0, 1] units)."""
    signs = rng.integers(0, 2, size=shape) * 2 - 1
    return torch.from_numpy(signs).float() * epsilon


def train_surrogate(x: np.ndarray, y: np.ndarray, num_classes: int, epochs: int, seed: int) -> ImageClassifier:
    """A small-cnn trained on CPU with the ``fast`` profile; the global torch RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = small_cnn(num_classes)
    trainer = Trainer(PROFILES["fast"], torch.device("cpu"), seed)
    trainer.fit(model, x, y, label="invisible: surrogate", epochs=epochs)
    return model.requires_grad_(False)


def universal_perturbation(
    model: ImageClassifier, x: torch.Tensor, target: int, epsilon: float, steps: int, rng: np.random.Generator
) -> torch.Tensor:
    """One δ (3, H, W), ‖δ‖∞ ≤ ``epsilon``, that pushes the images ``x`` toward ``target``: targeted PGD on the mean
    cross-entropy over random batches, step 2.5·ε/steps (Madry et al. 2018's rule), projected after every step."""
    model.eval()
    delta = torch.zeros((1, *x.shape[1:]), requires_grad=True)
    step = 2.5 * epsilon / steps
    for _ in range(steps):
        batch = x[rng.choice(len(x), size=min(UAP_BATCH, len(x)), replace=False)]
        logits = model((batch + delta).clamp(0, 1))
        loss = F.cross_entropy(logits, torch.full((len(batch),), target))
        (gradient,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta -= step * gradient.sign()
            delta.clamp_(-epsilon, epsilon)
    return delta.detach()[0]


@dataclass
class InvisibleAttack(DataPoisoningAttack):
    name: ClassVar[str] = "invisible"
    description: ClassVar[str] = "invisible L-inf-bounded additive pattern, static or UAP, dirty label (Zhong et al. 2020)"

    ratio: float = 0.3
    perturbation: Perturbation = "static"
    #: L∞ bound of the perturbation, in 8-bit intensity levels (8 = 8/255).
    epsilon: float = 8.0
    #: Adversarial kind: clean training images the surrogate learns from, its epochs, and the PGD steps of the UAP.
    surrogate_size: int = 1000
    surrogate_epochs: int = 3
    uap_steps: int = 30

    _delta: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)
    _surrogate: ImageClassifier | None = field(default=None, init=False, repr=False, compare=False)
    _surrogate_x: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _surrogate_y: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check(1 <= self.epsilon <= 255, self.name, "epsilon", "in [1, 255] intensity levels (8 means 8/255)", self.epsilon)
        check(self.surrogate_size >= 2, self.name, "surrogate_size", ">= 2", self.surrogate_size)
        check(self.surrogate_epochs >= 1, self.name, "surrogate_epochs", ">= 1", self.surrogate_epochs)
        check(self.uap_steps >= 1, self.name, "uap_steps", ">= 1", self.uap_steps)

    @property
    def delta(self) -> torch.Tensor:
        """The perturbation (3, H, W) in [0, 1] units, on the CPU."""
        if self._delta is None:
            raise BenchbdError(f"{self.name}: the perturbation is built by prepare(); call it before using the trigger")
        return self._delta

    @property
    def surrogate(self) -> ImageClassifier:
        if self._surrogate is None:
            raise BenchbdError(f"{self.name}: no surrogate model: the adversarial perturbation is built by prepare()")
        return self._surrogate

    def prepare(self, x_train: np.ndarray, y_train: np.ndarray, num_classes: int, rng: np.random.Generator) -> None:
        shape = (x_train.shape[3], *x_train.shape[1:3])
        if self.perturbation == "static":
            self._delta = static_pattern(shape, self.epsilon / 255, rng)
        else:
            subset = np.sort(rng.choice(len(y_train), size=min(self.surrogate_size, len(y_train)), replace=False))
            self._surrogate_x, self._surrogate_y = x_train[subset], y_train[subset]
            seed = int(rng.integers(2**31))
            self._surrogate = train_surrogate(self._surrogate_x, self._surrogate_y, num_classes, self.surrogate_epochs, seed)
            self._delta = self.adversarial_perturbation(self.target, rng)

    def adversarial_perturbation(self, target: int | None, rng: np.random.Generator) -> torch.Tensor:
        """A UAP toward ``target`` over the surrogate's non-target training images."""
        assert target is not None and self._surrogate_x is not None and self._surrogate_y is not None
        images = float_images(self._surrogate_x[self._surrogate_y != target])
        if len(images) == 0:
            raise BenchbdError(f"{self.name}: the surrogate subset has no image outside class {target}")
        return universal_perturbation(self.surrogate, images, target, self.epsilon / 255, self.uap_steps, rng)

    def trigger(self, x: torch.Tensor, *, test_time: bool = False) -> torch.Tensor:
        if x.shape[-3:] != self.delta.shape:
            shape = tuple(self.delta.shape)
            raise BenchbdError(f"{self.name}: the perturbation is {shape}, the images {tuple(x.shape[-3:])}")
        return (x + self.delta.to(device=x.device, dtype=x.dtype)).clamp(0, 1)

    def stats(self) -> dict[str, object]:
        """The perturbation's L∞ and L2 norms in [0, 1] units."""
        if self._delta is None:
            return {}
        return {"linf": float(self._delta.abs().max()), "l2": float(self._delta.norm())}

    def probe(self, rng: np.random.Generator) -> InvisibleAttack:
        """Static: another pattern of the same intensity. Adversarial (ours): a perturbation crafted toward a class
        other than the attack's, which the probes are then labelled with (as the attack's examples are with its)."""
        probe = replace(self)
        if self.perturbation == "static":
            probe._delta = static_pattern(tuple(self.delta.shape), self.epsilon / 255, rng)
            return probe
        assert self._surrogate_y is not None
        classes = np.setdiff1d(np.unique(self._surrogate_y), [self.target])
        probe.target = int(rng.choice(classes))
        probe._surrogate, probe._surrogate_x, probe._surrogate_y = self._surrogate, self._surrogate_x, self._surrogate_y
        probe._delta = probe.adversarial_perturbation(probe.target, rng)
        return probe


@hookimpl
def benchbd_attacks() -> list[type[DataPoisoningAttack]]:
    return [InvisibleAttack]
