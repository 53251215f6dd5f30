"""Projected gradient descent, and adversarial training (Madry et al., ICLR 2018).

:func:`pgd_perturb` is the first-order adversary: from a random start in the ε-ball around ``x`` (Madry et al.
section 3; optional), ``steps`` steps of ``step_size`` on the cross-entropy, each followed by a projection onto
the ball and onto the image box [0, 1]. The ball is L∞ (signed-gradient steps) unless ``norm="l2"`` asks for an
L2 ball, whose steps follow the gradient scaled to length ``step_size`` (the robustness library's L2 PGD).
Untargeted, it ascends the loss of the true labels; targeted, it descends the loss of the given labels (raises
their probability). AEGIS's image translation is the targeted form with no random start
(:func:`benchbd_builtins.defenses.aegis.translate_toward`).

:func:`adversarial_training_loss` wraps a :class:`LossComputation` into Madry et al.'s saddle-point objective
(equation 2.1): the inner maximisation is PGD on the cross-entropy of the batch's labels, the outer loss is the
wrapped loss evaluated at the adversarial batch. The inner attack uses cross-entropy whatever the wrapped loss
is, as Madry et al. do (their training loss is cross-entropy); a wrapped loss with side effects therefore runs
once per batch, not once per attack step.

Mode. The attack runs with the model in eval mode and the caller's mode is restored afterwards, as the
robustness library (which AEGIS's authors trained with) and the TRADES reference code do: BatchNorm then
normalises with its running statistics, so the attack's forward passes neither move those statistics nor couple
the examples of a batch through batch statistics, and the perturbation is computed against the function the
trained model will compute. The outer loss then runs in the caller's (train) mode.

Precision. Gradients are taken with respect to a float32 copy of the input and the loss is computed in float32
from the logits, so under ``torch.autocast`` (bf16 on CUDA) only the network's internal arithmetic is reduced;
the step direction, the projection and the returned images are float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchbd.training.trainer import LossComputation, StepInfo

Norm = Literal["linf", "l2"]

#: Keeps the random starts' streams apart from the trainer's augmentation streams, seeded by the same (seed, step).
RANDOM_START_STREAM = 1


def pgd_perturb(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    generator: torch.Generator | None,
    targeted: bool = False,
    random_start: bool = True,
    norm: Norm = "linf",
) -> torch.Tensor:
    """PGD around ``x`` (float images in [0, 1], N×C×H×W); returns detached float32 images in the ball ∩ [0, 1].

    Untargeted: ascend the cross-entropy of labels ``y``. ``targeted``: descend it, moving every image toward its
    label in ``y``. ``random_start``: begin at a point drawn uniformly from the ball with ``generator`` (which
    may be ``None`` only without a random start). ``norm``: the ball, L∞ (signed-gradient steps, the default)
    or L2 (steps along the gradient scaled to length ``step_size`` per image). The model is attacked in eval
    mode; its mode is restored.
    """
    if eps < 0 or step_size < 0 or steps < 0:
        raise ValueError(f"pgd_perturb: eps, step_size and steps must be >= 0; got {eps}, {step_size}, {steps}")
    if norm not in ("linf", "l2"):
        raise ValueError(f"pgd_perturb: norm must be linf or l2; got {norm!r}")
    origin = x.detach().float()
    project = _project_linf if norm == "linf" else _project_l2
    if random_start and eps > 0:
        if generator is None:
            raise ValueError("pgd_perturb: a random start needs a generator")
        adversarial = project(origin + _uniform_in_ball(origin, eps, norm, generator), origin, eps)
    else:
        adversarial = origin.clone()
    direction = -1.0 if targeted else 1.0
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            for _ in range(steps):
                adversarial.requires_grad_(True)
                loss = F.cross_entropy(model(adversarial).float(), y, reduction="sum")
                (gradient,) = torch.autograd.grad(loss, adversarial)
                if norm == "linf":
                    ascent = gradient.sign()
                else:
                    ascent = gradient / gradient.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
                adversarial = project(adversarial.detach() + direction * step_size * ascent, origin, eps)
    finally:
        model.train(was_training)
    return adversarial.detach()


def _project_linf(x: torch.Tensor, origin: torch.Tensor, eps: float) -> torch.Tensor:
    """Onto the L∞ ball of radius ``eps`` around ``origin``, then the box [0, 1] (the intersection: the box is
    a product of intervals, so clipping coordinate-wise to both is exact)."""
    return torch.max(torch.min(x, origin + eps), origin - eps).clamp_(0, 1)


def _project_l2(x: torch.Tensor, origin: torch.Tensor, eps: float) -> torch.Tensor:
    """Rescale the perturbation into the L2 ball, then clip to [0, 1] (clipping only shortens it, so the result
    stays in the ball; as in Madry et al.'s and the robustness library's L2 PGD)."""
    delta = x - origin
    norms = delta.flatten(1).norm(dim=1).view(-1, *[1] * (x.dim() - 1))
    delta = delta * (eps / norms.clamp_min(1e-12)).clamp(max=1.0)
    return (origin + delta).clamp_(0, 1)


def _uniform_in_ball(origin: torch.Tensor, eps: float, norm: Norm, generator: torch.Generator) -> torch.Tensor:
    """A perturbation drawn uniformly from the ball of radius ``eps`` (one per image)."""
    if norm == "linf":
        noise = torch.rand(origin.shape, generator=generator, device=generator.device)
        return ((2 * noise - 1) * eps).to(origin.device)
    direction = torch.randn(origin.shape, generator=generator, device=generator.device)
    direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (origin.dim() - 1))
    dims = origin[0].numel()
    radius = eps * torch.rand(len(origin), generator=generator, device=generator.device) ** (1 / dims)
    return (direction * radius.view(-1, *[1] * (origin.dim() - 1))).to(origin.device)


@dataclass
class AdversarialTrainingLoss:
    """The wrapped loss at the PGD adversarial examples of each batch; see :func:`adversarial_training_loss`.

    The random start of batch ``b`` of epoch ``e`` is drawn from a generator seeded by (the training's seed,
    global step), so models of two seeds draw other starts, and a run restored from a checkpoint continues with the
    perturbations the original run would have drawn.
    """

    base: LossComputation
    eps: float
    step_size: float
    steps: int
    norm: Norm = "linf"

    def __post_init__(self) -> None:
        if self.eps < 0 or self.step_size < 0 or self.steps < 0:
            raise ValueError(
                "adversarial training: eps, step_size and steps must be >= 0; "
                f"got {self.eps}, {self.step_size}, {self.steps}"
            )
        self._generators: dict[torch.device, torch.Generator] = {}

    def _generator(self, device: torch.device, step: StepInfo) -> torch.Generator:
        generator = self._generators.get(device)
        if generator is None:
            generator = self._generators[device] = torch.Generator(device=device)
        global_step = step.epoch * step.batches + step.batch
        state = np.random.SeedSequence([step.seed, global_step, RANDOM_START_STREAM]).generate_state(1, np.uint64)[0]
        return generator.manual_seed(int(state))

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: StepInfo) -> torch.Tensor:
        adversarial = pgd_perturb(
            model,
            x,
            y,
            eps=self.eps,
            step_size=self.step_size,
            steps=self.steps,
            generator=self._generator(x.device, step),
            norm=self.norm,
        )
        return self.base(model, adversarial.to(x.dtype), y, step)


def adversarial_training_loss(
    base: LossComputation, *, eps: float, step_size: float, steps: int, norm: Norm = "linf"
) -> LossComputation:
    """Madry et al.'s robust objective around ``base``: ``base`` evaluated at the batch's PGD examples (random
    start, ``steps`` steps of ``step_size`` within the ``norm`` ball of radius ``eps``; L∞ unless told) instead
    of the clean batch."""
    return AdversarialTrainingLoss(base, eps, step_size, steps, norm)
