"""``neural-cleanse`` and ``neural-cleanse-model``: Wang et al., "Neural Cleanse: Identifying and Mitigating
Backdoor Attacks in Neural Networks" (IEEE S&P 2019), in the filtering mode BaDLoss section 4.2 compares with
and as the model detector of section IV-C; both share the trigger reverse engineering.

Trigger reverse engineering (section IV-B/C): for every class t, find a mask m (H×W, in [0, 1]) and a pattern
p (C×H×W, in [0, 1]) such that x' = (1 − m)·x + m·p is classified as t, minimising
``cross_entropy(f(x'), t) + λ·‖m‖₁`` with Adam; m and p are optimised in tanh space so they stay in [0, 1].
The optimisation runs in rounds of mini-batches, as the authors' released code (github.com/bolunwang/backdoor,
visualizer.py) does: after each round, λ is multiplied by ``cost_multiplier`` once the round's mean attack
success has reached ``success_threshold`` ``patience`` rounds in a row, and divided by ``cost_multiplier``^1.5
after ``patience`` rounds below it. The reported trigger is the smallest-norm one whose round reached the
threshold (the last one if none did). Outlier detection (section IV-C):
the anomaly index of each class is its norm's distance below the median in units of the consistent MAD
(1.4826 × median absolute deviation); a class whose index exceeds 2 is infected.

Budgets. The released code's GTSRB example (gtsrb_visualize_example.py) runs up to 1,000 rounds of 31
mini-batches of 32 held-out images, λ multiplier 2, λ at 0 until the attack first succeeds for ``patience``
rounds, and stops a class once λ has gone both up and down and its norm has not shrunk for 25 rounds:
``-P neural-cleanse-model.steps=1000 -P neural-cleanse-model.round_batches=31 -P
neural-cleanse-model.batch_size=32 -P neural-cleanse-model.cost_multiplier=2 -P
neural-cleanse-model.reset_cost=true -P neural-cleanse-model.early_stop_rounds=25`` (with ``clean_count`` clean
images). The defaults are ours, a CPU budget: 100 rounds of one
mini-batch of 16 (``patience`` then counts mini-batches), λ multiplier 1.5 (the visualizer's own default),
λ = ``init_cost`` from the start (the code's no-reset option) and no early stop. In both, all classes are
optimised together as one batched tensor (Adam is per element, so this equals separate runs) on ``clean_count``
clean images drawn without replacement: in filter mode of the defender's trusted training examples
(``ExampleContext.trusted_clean``), in model mode of its held-out ones (``ModelContext.clean_x``).

Filtering (section VI-A, "Filter for Detecting Adversarial Inputs"): the neurons of the second-to-last layer
(``model.features``) whose mean activation rises most when the reversed trigger is added to clean images, the
top ``neuron_fraction`` (1% in the paper, at least one), define an input's activation profile: the mean of
those neurons' activations. Training examples are scored by their profile of the most anomalous class (the
largest of the flagged classes' profiles, each standardised on the trusted clean examples, when several are
flagged, e.g. under several attacks). The paper calibrates the filter's threshold on clean inputs and reports
it at fixed false-positive rates, 5% among them: examples whose score exceeds the (1 − ``false_positive_rate``)
quantile of the trusted clean examples' scores are flagged, and none when no class's anomaly index exceeds
``anomaly_threshold`` (the model is then judged clean; the verdict's ``details`` say so, for the leaderboard).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from benchbd import ExampleContext, ExampleDefense, ExampleVerdict, ImageClassifier, ModelContext, ModelDefense, ModelVerdict, hookimpl, no_progress
from benchbd.params import check

#: Scale making the median absolute deviation a consistent estimator of a normal distribution's deviation.
MAD_CONSISTENCY = 1.4826
INFERENCE_BATCH = 1024


@dataclass
class ReversedTriggers:
    """The reverse-engineered trigger of each class in ``classes``: masks (K, 1, H, W), patterns (K, C, H, W)
    in [0, 1], the masks' L1 norms, each trigger's mean attack success over the round it was kept at, and the
    rounds run (fewer than asked when every class stopped early)."""

    classes: np.ndarray
    masks: torch.Tensor
    patterns: torch.Tensor
    norms: np.ndarray
    success: np.ndarray
    rounds: int


def stamp(x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """x' = (1 − m)·x + m·p, broadcast over the batch."""
    return (1 - mask) * x + mask * pattern


def _unit_interval(raw: torch.Tensor) -> torch.Tensor:
    return torch.tanh(raw) / 2 + 0.5


def _random_tanh_space(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A uniformly random tensor in (0, 1), as its tanh-space parameter (the released code's random init)."""
    return torch.atanh((torch.rand(shape, generator=generator) - 0.5) * 1.98).to(device).requires_grad_()


class CostSchedule:
    """λ of each class, updated once a round (the authors' released code): × ``multiplier`` after ``patience``
    rounds in a row whose attack succeeded, ÷ ``multiplier``^1.5 after ``patience`` rounds in a row that failed.
    With ``reset_cost`` λ starts at 0 and is set to ``init_cost`` once the attack has succeeded ``patience``
    rounds in a row (the released default); without, it starts at ``init_cost``."""

    def __init__(self, classes: int, init_cost: float, multiplier: float, patience: int, reset_cost: bool = False) -> None:
        self.init_cost = init_cost
        self.cost = np.full(classes, 0.0 if reset_cost else init_cost)
        self.multiplier = multiplier
        self.patience = patience
        self.above = np.zeros(classes, dtype=np.int64)
        self.below = np.zeros(classes, dtype=np.int64)
        self.at_zero = np.zeros(classes, dtype=np.int64)
        self.went_up = np.zeros(classes, dtype=bool)
        self.went_down = np.zeros(classes, dtype=bool)

    def update(self, reached: np.ndarray) -> None:
        self.at_zero = np.where((self.cost == 0) & reached, self.at_zero + 1, 0)
        start = self.at_zero >= self.patience
        if start.any():
            self.cost[start] = self.init_cost
            self.above[start] = self.below[start] = self.at_zero[start] = 0
            self.went_up[start] = self.went_down[start] = False
        self.above = np.where(reached, self.above + 1, 0)
        self.below = np.where(reached, 0, self.below + 1)
        raise_, lower = self.above >= self.patience, self.below >= self.patience
        self.cost = np.where(raise_, self.cost * self.multiplier, self.cost)
        self.cost = np.where(lower, self.cost / self.multiplier**1.5, self.cost)
        self.above[raise_], self.below[lower] = 0, 0
        self.went_up |= raise_
        self.went_down |= lower


def reverse_engineer_triggers(
    model: ImageClassifier,
    x_clean: torch.Tensor,
    num_classes: int,
    *,
    classes: list[int] | None = None,
    steps: int = 100,
    round_batches: int = 1,
    batch_size: int = 16,
    lr: float = 0.1,
    init_cost: float = 1e-3,
    cost_multiplier: float = 1.5,
    patience: int = 5,
    success_threshold: float = 0.99,
    reset_cost: bool = False,
    early_stop_rounds: int = 0,
    seed: int = 0,
    progress: Callable[[str, int, int], None] = no_progress,
) -> ReversedTriggers:
    """Reverse-engineer the minimal trigger of every class (or of ``classes``) on float images ``x_clean``
    in [0, 1], shape (N, C, H, W), on the model's device; all classes in one batched optimisation.

    ``steps`` rounds of ``round_batches`` mini-batches of ``batch_size``; after each round, a class's trigger is
    kept if its mean attack success over the round reached ``success_threshold`` with a smaller mean norm than
    the one kept, and its λ is updated (:class:`CostSchedule`). ``early_stop_rounds`` > 0: a class stops once its
    λ has gone both up and down and its kept norm has not shrunk for that many rounds (the released code's early
    stop); the optimisation ends when every class has. ``progress`` hears of every 10th round."""
    model.eval()
    device = x_clean.device
    targets = torch.as_tensor(list(range(num_classes)) if classes is None else classes, device=device)
    k, (_, channels, height, width) = len(targets), x_clean.shape
    generator = torch.Generator().manual_seed(seed)
    mask_raw = _random_tanh_space((k, 1, height, width), generator, device)
    pattern_raw = _random_tanh_space((k, channels, height, width), generator, device)
    optimizer = torch.optim.Adam([mask_raw, pattern_raw], lr=lr, betas=(0.5, 0.9))

    schedule = CostSchedule(k, init_cost, cost_multiplier, patience, reset_cost)
    best_norm = np.full(k, np.inf)
    best_mask = torch.empty(k, 1, height, width, device=device)
    best_pattern = torch.empty(k, channels, height, width, device=device)
    kept_success, success = np.zeros(k), np.zeros(k)
    active = np.ones(k, dtype=bool)
    unimproved = np.zeros(k, dtype=np.int64)
    for round_ in range(steps):
        if round_ % 10 == 0:
            progress("reverse engineering, rounds" if round_batches > 1 else "reverse engineering, mini-batches", round_, steps)
        success_sum, norm_sum = np.zeros(k), np.zeros(k)
        for _ in range(round_batches):
            index = torch.randint(len(x_clean), (min(batch_size, len(x_clean)),), generator=generator).to(device)
            mask, pattern = _unit_interval(mask_raw), _unit_interval(pattern_raw)
            stamped = stamp(x_clean[index][None], mask[:, None], pattern[:, None])  # (K, B, C, H, W)
            logits = model(stamped.flatten(0, 1).contiguous(memory_format=torch.channels_last))
            labels = targets.repeat_interleave(len(index))
            cross_entropy = F.cross_entropy(logits, labels, reduction="none").view(k, -1).mean(1)
            norms = mask.flatten(1).sum(1)
            loss = (cross_entropy + torch.as_tensor(schedule.cost, device=device, dtype=norms.dtype) * norms).sum()
            mask_raw.grad, pattern_raw.grad = torch.autograd.grad(loss, [mask_raw, pattern_raw])
            optimizer.step()
            success_sum += (logits.argmax(1) == labels).float().view(k, -1).mean(1).cpu().numpy()
            norm_sum += norms.detach().cpu().numpy()

        success, norm_values = success_sum / round_batches, norm_sum / round_batches
        reached = success >= success_threshold
        improved = active & reached & (norm_values < best_norm)
        if improved.any():
            chosen = torch.from_numpy(np.flatnonzero(improved)).to(device)
            best_mask[chosen], best_pattern[chosen] = mask.detach()[chosen], pattern.detach()[chosen]
            best_norm[improved] = norm_values[improved]
            kept_success[improved] = success[improved]
        if early_stop_rounds:
            unimproved = np.where(improved | ~np.isfinite(best_norm), 0, unimproved + 1)
            active &= ~(schedule.went_up & schedule.went_down & (unimproved >= early_stop_rounds))
            if not active.any():
                break
        schedule.update(reached)

    never = np.flatnonzero(~np.isfinite(best_norm))
    if len(never):
        chosen = torch.from_numpy(never).to(device)
        best_mask[chosen] = _unit_interval(mask_raw.detach()[chosen])
        best_pattern[chosen] = _unit_interval(pattern_raw.detach()[chosen])
        kept_success[never] = success[never]
    norms = best_mask.flatten(1).sum(1).cpu().numpy().astype(np.float64)
    return ReversedTriggers(targets.cpu().numpy(), best_mask, best_pattern, norms, kept_success, round_ + 1)


def anomaly_index(norms: np.ndarray) -> np.ndarray:
    """Each norm's distance below the median in consistent-MAD units (section IV-C); negative above the median.

    An index above 2 marks an outlier on the small side: a class needing an abnormally small trigger.
    """
    norms = np.asarray(norms, dtype=np.float64)
    median = np.median(norms)
    mad = MAD_CONSISTENCY * np.median(np.abs(norms - median))
    return (median - norms) / max(mad, 1e-12)


def median_anomaly_index(norms_per_draw: np.ndarray) -> np.ndarray:
    """Each class's median, over independent reverse-engineering draws (rows of ``norms_per_draw``), of the anomaly
    index within each draw: one draw's outlier must come back in most draws to count."""
    return np.median([anomaly_index(norms) for norms in np.atleast_2d(norms_per_draw)], axis=0)


def outlier_gate(index: np.ndarray, threshold: float) -> dict[str, object]:
    """Why the filter flags nothing, for the record: empty when some class's anomaly index exceeds ``threshold``
    (the model is infected, section IV-C), else the gate and every class's index (the model is judged clean)."""
    if (index > threshold).any():
        return {}
    return {"gate": f"no class above anomaly index {threshold:g}", "anomaly_index": [round(float(v), 3) for v in index]}


@torch.no_grad()
def _features(model: ImageClassifier, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model.features(x[i : i + INFERENCE_BATCH]).float() for i in range(0, len(x), INFERENCE_BATCH)])


def trigger_neurons(
    model: ImageClassifier, x_clean: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor, fraction: float
) -> np.ndarray:
    """The second-to-last-layer neurons whose mean activation rises most under the trigger (section VI-A)."""
    model.eval()
    rise = (_features(model, stamp(x_clean, mask, pattern)) - _features(model, x_clean)).mean(0)
    count = max(1, math.ceil(fraction * len(rise)))
    return torch.argsort(rise, descending=True)[:count].cpu().numpy()


@dataclass
class TriggerReversal:
    """Reverse-engineering parameters shared by the filtering and the model-detection mode (section IV-B/C)."""

    clean_count: int = 200
    steps: int = 100
    round_batches: int = 1
    batch_size: int = 16
    lr: float = 0.1
    init_cost: float = 1e-3
    cost_multiplier: float = 1.5
    patience: int = 5
    success_threshold: float = 0.99
    reset_cost: bool = False
    early_stop_rounds: int = 0
    anomaly_threshold: float = 2.0

    def __post_init__(self) -> None:
        name = getattr(self, "name", type(self).__name__)
        for field in ("clean_count", "steps", "round_batches", "batch_size", "patience"):
            check(getattr(self, field) >= 1, name, field, ">= 1", getattr(self, field))
        check(self.early_stop_rounds >= 0, name, "early_stop_rounds", ">= 0 (0: no early stop)", self.early_stop_rounds)
        for field in ("lr", "init_cost", "anomaly_threshold"):
            check(getattr(self, field) > 0, name, field, "> 0", getattr(self, field))
        check(self.cost_multiplier > 1, name, "cost_multiplier", "> 1", self.cost_multiplier)
        check(0 < self.success_threshold <= 1, name, "success_threshold", "in (0, 1]", self.success_threshold)

    def reverse(
        self, model: ImageClassifier, x_clean: torch.Tensor, num_classes: int, seed: int,
        progress: Callable[[str, int, int], None] = no_progress,
    ) -> ReversedTriggers:
        """:func:`reverse_engineer_triggers` for every class with this defense's parameters."""
        return reverse_engineer_triggers(
            model,
            x_clean,
            num_classes,
            steps=self.steps,
            round_batches=self.round_batches,
            batch_size=self.batch_size,
            lr=self.lr,
            init_cost=self.init_cost,
            cost_multiplier=self.cost_multiplier,
            patience=self.patience,
            success_threshold=self.success_threshold,
            reset_cost=self.reset_cost,
            early_stop_rounds=self.early_stop_rounds,
            seed=seed,
            progress=progress,
        )


@dataclass
class NeuralCleanse(TriggerReversal, ExampleDefense):
    name: ClassVar[str] = "neural-cleanse"
    description: ClassVar[str] = "reversed-trigger neurons' activations filter the training set (Wang et al. 2019)"

    neuron_fraction: float = 0.01
    false_positive_rate: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 < self.neuron_fraction <= 1, self.name, "neuron_fraction", "in (0, 1]", self.neuron_fraction)
        fpr = self.false_positive_rate
        check(0 < fpr < 1, self.name, "false_positive_rate", "in (0, 1)", fpr)

    def clean_images(self, context: ExampleContext) -> torch.Tensor:
        """``clean_count`` trusted clean training images, float in [0, 1] on the trainer's device."""
        count = min(self.clean_count, len(context.trusted_clean))
        chosen = context.rng.choice(context.trusted_clean, size=count, replace=False)
        return context.trainer.images(context.x_train[chosen]).float() / 255

    def filter_examples(
        self, context: ExampleContext, x_clean: torch.Tensor, triggers: ReversedTriggers
    ) -> ExampleVerdict:
        """Score training examples by the activation profile of the infected (else most anomalous) class; flag
        none, saying so in the verdict's details, when :func:`outlier_gate` finds no infected class."""
        index = anomaly_index(triggers.norms)
        gate = outlier_gate(index, self.anomaly_threshold)
        infected = np.flatnonzero(index > self.anomaly_threshold)
        suspects = infected if len(infected) else np.array([int(np.argmax(index))])
        features = context.features().astype(np.float64)
        trusted = context.trusted_clean
        profiles = []
        for k in suspects:
            mask, pattern = triggers.masks[k], triggers.patterns[k]
            neurons = trigger_neurons(context.model, x_clean, mask, pattern, self.neuron_fraction)
            profile = features[:, neurons].mean(1)
            profiles.append((profile - profile[trusted].mean()) / max(profile[trusted].std(), 1e-12))
        scores = np.max(profiles, axis=0)
        threshold = np.quantile(scores[trusted], 1 - self.false_positive_rate, method="higher")
        return ExampleVerdict(scores, (scores > threshold) & (not gate), details=gate)

    def score_examples(self, context: ExampleContext) -> ExampleVerdict:
        x_clean = self.clean_images(context)
        triggers = self.reverse(context.model, x_clean, context.data.num_classes, int(context.rng.integers(2**31)))
        return self.filter_examples(context, x_clean, triggers)


@dataclass
class NeuralCleanseModel(TriggerReversal, ModelDefense):
    """Model detection (section IV-C): the model is infected when a class's anomaly index exceeds
    ``anomaly_threshold`` (2 in the paper); those classes are the suspected targets. The model's score is the
    largest anomaly index. Clean images are ``clean_count`` of the defender's held-out set.

    ``draws`` (ours; the paper reverse-engineers once): independent reverse engineerings, each on its own draw of
    clean images and its own random start; a class's index is the median of its index in each draw
    (:func:`median_anomaly_index`), so that a verdict near the threshold does not rest on one draw's clean images
    and start (docs/findings.md measures how far one model's index moves between draws). 1, the paper's, by
    default."""

    name: ClassVar[str] = "neural-cleanse-model"
    description: ClassVar[str] = "anomaly index of reversed-trigger norms flags backdoored models (Wang et al. 2019)"

    draws: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.draws >= 1, self.name, "draws", ">= 1", self.draws)

    def inspect_model(self, context: ModelContext) -> ModelVerdict:
        norms, rounds = [], []
        for draw in range(self.draws):
            chosen = context.rng.choice(len(context.clean_y), size=min(self.clean_count, len(context.clean_y)), replace=False)
            x_clean = context.trainer.images(context.clean_x[chosen]).float() / 255
            label = f"draw {draw + 1}/{self.draws}, " if self.draws > 1 else ""

            def progress(what: str, done: int, total: int) -> None:
                context.progress(label + what, done, total)

            triggers = self.reverse(context.model, x_clean, context.num_classes, int(context.rng.integers(2**31)), progress)
            norms.append(triggers.norms)
            rounds.append(triggers.rounds)
        index = median_anomaly_index(np.array(norms))
        infected = [int(c) for c in np.flatnonzero(index > self.anomaly_threshold)]
        details: dict[str, object] = {"anomaly_index": [round(float(v), 3) for v in index], "rounds": rounds}
        if self.draws == 1:
            details["mask_l1"] = [round(float(v), 2) for v in norms[0]]
        else:
            details["mask_l1_per_draw"] = [[round(float(v), 2) for v in draw_norms] for draw_norms in norms]
        return ModelVerdict(score=float(index.max()), flagged=bool(infected), suspect_classes=infected, details=details)


@hookimpl
def benchbd_defenses() -> list[type[ExampleDefense] | type[ModelDefense]]:
    return [NeuralCleanse, NeuralCleanseModel]
