"""``aegis``: Soremekun et al., "Towards Backdoor Attacks and Defense in Robust Machine Learning Models"
(Computers & Security 2023, arXiv:2003.00865): AEGIS, backdoor detection in PGD-trained (robust) models.

Robust training (section IV, "Adversarial Training"; Madry et al. 2018). The judged models, backdoored and clean
alike, are trained with :meth:`AEGIS.training_loss`: the wrapped loss at PGD examples of every batch
(:func:`benchbd.training.adversarial.adversarial_training_loss`: random start, ``train_steps`` steps of
``train_step_size`` within the ``train_norm`` ball of radius ``train_eps``).

Detection (section IV, algorithm 1, steps 1-4). For every examined class y:

1. Translation: ``seeds`` random clean training images of any label (step 1: "no constraint on the labels of the seed
   images") are moved toward y by first-order optimisation of y's probability (equation 5: descend the
   cross-entropy of y), PGD from the seed itself, without a random start (:func:`translate_toward`).
2. Features: penultimate activations (``model.features``) of the clean training images of class y and of
   the translated images, concatenated (step 2).
3. t-SNE to two dimensions, perplexity ``perplexity`` (step 3; Table XV: 30).
4. Mean shift (Fukunaga & Hostetler 1975) on the embedding, bandwidth from scikit-learn's
   ``estimate_bandwidth`` (step 4; section V-A, "Detection Configuration"); the modes are the clusters.

A clean class shows two clusters, its own images and its translations (section IV: "the training set cluster
and the translated image cluster"); the paper flags a class with more than two (section V-B, RQ2: "classes that
have more than two feature clusters") and a model with any flagged class. ``rule="fixed"`` is that rule with
``clean_clusters`` = 2 (a class of which the defender holds no training image can only show its translations, so
its bound is one less). ``rule="median"`` flags a class whose count exceeds the median count over the examined
classes instead, for models on which clean classes do not show exactly two (ours, not the paper's).
``rule="translations"`` counts the clusters of the translated set alone, those holding more translations than
the class's own images, and flags a class with more than one: the paper's picture of an infected class, "one
cluster for the clean training images and at least two clusters for the translated images" (RQ2), as a rule
(ours: the paper counts all clusters). A class whose own images fall into two clusters (two appearance modes of a
sign) is not flagged by it. ``details`` keep both counts under every rule.
``clusterer="hdbscan"`` is the paper's RQ7 ablation (McInnes et al.'s ``hdbscan`` package).

Score (ours; the paper only flags): per class, its count minus its bound, plus, when that is positive, the
fraction of the class's points outside its ``bound`` largest clusters (under ``rule="translations"``: of its
translations outside the translated set's largest cluster; in [0, 1): among models with equal excess counts, more
mass in the extra clusters ranks higher); the model's score is the largest over the examined classes. ``details``
keep the adversarial accuracy, each examined class's score and the number of runs that flagged it, and under
``runs`` each run's cluster counts (all, and the translated set's), bound, score, training-image count and
bandwidth per class, the fraction of translations the model assigns to the class, and the number of seeds.

From the paper: 500 seed images per class (section IV step 1; RQ4 varies 200-800), perplexity 30, the
translation radius (Table XV) and the estimated bandwidth (Table XV, section V-A). Choices and deviations:

- Robust-training budget: the ε, step size and number of steps of section IV and Table XIV are not legible in
  our copy of the paper (the symbols are lost; the text says only that they are the same for all datasets and
  that the robustness library's defaults apply otherwise). The defaults are Madry et al.'s CIFAR-10 setting,
  L∞ ε = 8/255 with 7 steps of 2/255, the usual PGD-training budget for 32×32 colour images. The paper's
  CIFAR-10 figures (90.3% clean, 68.6% adversarial accuracy) resemble the robustness library's L2 ε = 0.5
  model, so the paper may have trained in an L2 ball: ``train_norm=l2 train_eps=0.5`` (with e.g. a step of
  0.1) is that alternative.
- Translation: Table XV's ε is 100 (MNIST, Fashion-MNIST) and 500 (CIFAR-10), L2 radii in [0, 1] pixel units
  (the robustness library's), larger than the L2 diameter of the image box itself (28 for 28×28×1 images, 55.4
  for 32×32×3), so the ball never binds and translation is limited only by [0, 1]. The defaults are the
  CIFAR-10 radius in an L2 ball with L2-normalised steps, as the robustness library takes them. The paper
  gives no step size or number of steps; ``translate_steps`` = 60 steps of length 1 are ours (enough to cross
  the box from any seed).
- Images: as in the paper (section III: "the user has access to clean training data"; section IV step 1:
  "AEGIS samples a seed from the training data"), the seeds and each class's own images come from the clean
  training set the defender handed over (``context.train_x``), before it was poisoned. The paper does not say
  how many of a class's training images it embeds; ``class_images`` = 500 of them at random (ours: as many as
  the translations, so neither cluster dwarfs the other, and a bounded t-SNE cost). Fewer training images than
  ``seeds``: every one is a seed (no repeats: translation without a random start would only duplicate them).
  The same seeds serve every class.
- Robustness check (ours; the paper: "it assumes the analyzed model is robust", and that robustness can be
  checked): before clustering, the model's accuracy under PGD with the robust-training budget (random start) on
  ``robustness_images`` held-out clean images. Below ``min_adversarial_accuracy`` (0.2: a standard model's is
  near 0, the paper's robust models reach 68.6-86%) the verdict is "not judged" with that reason, not a cluster
  count read off a model AEGIS was not designed for. The accuracy is in ``details`` either way, with its 95%
  Wilson interval over the images checked (:func:`binomial_interval`): a draw of 500 images is a sample, and two
  draws of the same model differ by a few points.
- Bandwidth: the paper reports one estimated bandwidth per dataset (35, 28, 21), not one per class.
  ``bandwidth_scope="model"`` runs ``estimate_bandwidth`` (quantile ``bandwidth_quantile``, scikit-learn's
  default 0.3) on every examined class's embedding and uses the median for all classes of the model;
  ``"class"`` uses each class's own estimate; a number in ``bandwidth`` fixes it (Table XV's values are for
  the paper's models and embeddings, not transferable).
- t-SNE needs more than three times the perplexity in points; for smaller sets the perplexity is lowered to
  (n − 1) / 3. scikit-learn's t-SNE runs with PCA initialisation and a seed drawn from ``context.rng``.
- Runs (section V, RQ4 "Stability": the paper runs "the full technique five times independently" and recommends
  "multiple runs of the AEGIS technique"): ``runs`` independent repetitions of steps 1-4, each with its own seeds,
  class images, translations and t-SNE seed. How runs combine is ours (the paper does not say): a class is flagged
  when more than half of the runs flag it (``flag_votes`` in ``details``), and its score is the lower median of its
  per-run scores (:func:`majority`). A majority keeps one
  run's chance split of a clean class's embedding from flagging the model, while a backdoor's extra cluster, which
  the paper finds in 27 of 30 runs, still flags it. ``runs`` = 1 (the default) is the paper's single run.
- HDBSCAN runs with ``min_cluster_size`` and ``allow_single_cluster=True`` (otherwise it never reports one
  cluster and a single blob's count depends on how it is broken up); its noise points belong to no cluster.
- Cost: translation takes seeds × examined classes × ``translate_steps`` forward-backward passes, 1.29 million
  with the paper's 500 seeds for 43 classes, too many for one CPU core (docs/findings.md has the measured rate).
  ``classes`` restricts the examined classes and ``seeds`` may be lowered for CPU runs; the defaults stay the
  paper's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
from sklearn.cluster import MeanShift, estimate_bandwidth
from sklearn.manifold import TSNE

from benchbd import BenchbdError, ImageClassifier, ModelContext, ModelDefense, ModelVerdict, hookimpl
from benchbd.params import check
from benchbd.training.adversarial import Norm, adversarial_training_loss, pgd_perturb
from benchbd.training.trainer import LossComputation

Clusterer = Literal["mean-shift", "hdbscan"]
Rule = Literal["fixed", "median", "translations"]
BATCH = 512


def translate_toward(
    model: ImageClassifier,
    seeds: torch.Tensor,
    target: int,
    *,
    eps: float,
    step_size: float,
    steps: int,
    norm: Norm = "linf",
    batch_size: int = BATCH,
) -> torch.Tensor:
    """Move float images ``seeds`` (N×C×H×W in [0, 1], on the model's device) toward class ``target`` (AEGIS
    step 1, equation 5): targeted PGD from the seeds themselves (no random start), ``steps`` steps of
    ``step_size`` in the ``norm`` ball of radius ``eps`` around each seed, inside [0, 1]."""
    out = []
    for start in range(0, len(seeds), batch_size):
        part = seeds[start : start + batch_size]
        labels = torch.full((len(part),), target, dtype=torch.long, device=part.device)
        translated = pgd_perturb(
            model, part, labels, eps=eps, step_size=step_size, steps=steps, generator=None, targeted=True,
            random_start=False, norm=norm,
        )
        out.append(translated)
    return torch.cat(out)


@torch.no_grad()
def _features(model: ImageClassifier, x: torch.Tensor, batch_size: int = BATCH) -> np.ndarray:
    model.eval()
    parts = [model.features(x[i : i + batch_size]).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(parts).numpy().astype(np.float64)


def embed(features: np.ndarray, *, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """Two-dimensional t-SNE embedding of ``features`` (n×d); the perplexity is capped at (n − 1) / 3."""
    n = len(features)
    if n < 4:
        raise BenchbdError(f"aegis: t-SNE needs at least 4 points; got {n}")
    perplexity = min(perplexity, (n - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(np.asarray(features, dtype=np.float64))


def bandwidth_of(points: np.ndarray, quantile: float = 0.3) -> float:
    """scikit-learn's ``estimate_bandwidth`` (mean distance to the ``quantile``·n-th nearest neighbour)."""
    return float(estimate_bandwidth(points, quantile=quantile, random_state=0))


def cluster_labels(
    points: np.ndarray, method: Clusterer = "mean-shift", *, bandwidth: float | None = None, min_cluster_size: int = 25,
    jobs: int | None = None,
) -> np.ndarray:
    """Cluster index of every point (−1: HDBSCAN noise). Mean shift uses ``bandwidth`` (estimated when ``None``)
    and runs its seeds' climbs on torch's CPU threads (``jobs``, default ``torch.get_num_threads()``): each climb is
    independent, so the labels are the same whatever their number, and on a many-core GPU host the judgement's CPU
    part shrinks with them (ours)."""
    if method == "mean-shift":
        if bandwidth is None:
            bandwidth = bandwidth_of(points)
        if not bandwidth > 0:  # all points coincide
            return np.zeros(len(points), dtype=np.int64)
        return MeanShift(bandwidth=bandwidth, n_jobs=jobs or torch.get_num_threads()).fit(points).labels_
    if method == "hdbscan":
        import hdbscan

        size = max(2, min(min_cluster_size, len(points)))
        clusterer = hdbscan.HDBSCAN(min_cluster_size=size, allow_single_cluster=True)
        return clusterer.fit_predict(points)
    raise BenchbdError(f"aegis: unknown clusterer '{method}'; valid: mean-shift, hdbscan")


def _count(labels: np.ndarray) -> int:
    return len(set(labels.tolist()) - {-1})


def count_clusters(
    features: np.ndarray,
    method: Clusterer = "mean-shift",
    *,
    perplexity: float = 30.0,
    bandwidth: float | None = None,
    min_cluster_size: int = 25,
    seed: int = 0,
) -> int:
    """AEGIS steps 3-4 on one feature set: t-SNE to two dimensions, then the number of mean-shift modes (or of
    HDBSCAN clusters, noise excluded)."""
    points = embed(features, perplexity=perplexity, seed=seed)
    return _count(cluster_labels(points, method, bandwidth=bandwidth, min_cluster_size=min_cluster_size))


def translation_clusters(labels: np.ndarray, own: int) -> np.ndarray:
    """The cluster of every translation (the points after the class's ``own`` training images), −1 for those in a
    cluster that holds at least as many of the class's own images: the translated set's clusters (RQ2)."""
    translated = labels[own:].copy()
    for cluster in set(translated.tolist()) - {-1}:
        if (labels[:own] == cluster).sum() >= (translated == cluster).sum():
            translated[translated == cluster] = -1
    return translated


def extra_mass(labels: np.ndarray, keep: int) -> float:
    """Fraction of the points outside the ``keep`` largest clusters (noise counts as outside)."""
    sizes = np.sort(np.bincount(labels[labels >= 0]))[::-1] if (labels >= 0).any() else np.zeros(0, int)
    return float(1 - sizes[: max(keep, 0)].sum() / len(labels))


def binomial_interval(fraction: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval (95% for z = 1.96) for a proportion ``fraction`` observed on ``n`` trials."""
    centre = (fraction + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(fraction * (1 - fraction) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def parse_classes(spec: str, num_classes: int) -> list[int]:
    """``"all"`` or comma-separated class indices."""
    if spec.strip().lower() == "all":
        return list(range(num_classes))
    try:
        classes = sorted({int(part) for part in spec.split(",") if part.strip()})
    except ValueError:
        raise BenchbdError(
            f"aegis: parameter 'classes' must be 'all' or comma-separated class indices; got {spec!r}"
        ) from None
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad or not classes:
        raise BenchbdError(
            f"aegis: parameter 'classes' names no class or classes outside 0..{num_classes - 1}: {spec!r}"
        )
    return classes


def majority(runs: list[ModelVerdict], classes: list[int]) -> ModelVerdict:
    """Several runs' verdicts on ``classes`` as one (ours): a class is flagged when more than half of the runs flag
    it; its score is the lower median of its per-run ``class_scores`` (positive exactly when more than half of the
    runs flag it, so scores and flags agree), the model's the largest of those."""
    votes = {c: sum(c in run.suspect_classes for run in runs) for c in classes}
    scores = {c: sorted(run.details["class_scores"][str(c)] for run in runs)[(len(runs) - 1) // 2] for c in classes}
    suspects = [c for c in classes if votes[c] > len(runs) / 2]
    details = {
        "flag_votes": {str(c): votes[c] for c in classes},
        "class_scores": {str(c): scores[c] for c in classes},
        "runs": [run.details for run in runs],
    }
    return ModelVerdict(score=max(scores.values()), flagged=bool(suspects), suspect_classes=suspects, details=details)


@dataclass
class AEGIS(ModelDefense):
    name: ClassVar[str] = "aegis"
    description: ClassVar[str] = (
        "robust (PGD-trained) models: extra feature clusters of class translations (Soremekun et al. 2023)"
    )
    training_fields: ClassVar[tuple[str, ...]] = ("train_norm", "train_eps", "train_step_size", "train_steps")

    train_norm: Norm = "linf"
    train_eps: float = 8 / 255
    train_step_size: float = 2 / 255
    train_steps: int = 7
    translate_norm: Norm = "l2"
    translate_eps: float = 500.0
    translate_step_size: float = 1.0
    translate_steps: int = 60
    seeds: int = 500
    perplexity: float = 30.0
    clusterer: Clusterer = "mean-shift"
    bandwidth: float | None = None
    bandwidth_quantile: float = 0.3
    bandwidth_scope: Literal["model", "class"] = "model"
    min_cluster_size: int = 25
    rule: Rule = "fixed"
    clean_clusters: int = 2
    classes: str = "all"
    class_images: int = 500
    min_adversarial_accuracy: float = 0.2
    robustness_images: int = 500
    runs: int = 1

    def __post_init__(self) -> None:
        for field in ("train_eps", "train_step_size", "translate_eps", "translate_step_size"):
            check(getattr(self, field) > 0, self.name, field, "> 0", getattr(self, field))
        for field in ("train_steps", "translate_steps", "seeds", "clean_clusters", "class_images", "robustness_images", "runs"):
            check(getattr(self, field) >= 1, self.name, field, ">= 1", getattr(self, field))
        check(self.perplexity > 0, self.name, "perplexity", "> 0", self.perplexity)
        check(0 <= self.min_adversarial_accuracy <= 1, self.name, "min_adversarial_accuracy", "in [0, 1]", self.min_adversarial_accuracy)
        if self.bandwidth is not None:
            check(self.bandwidth > 0, self.name, "bandwidth", "> 0 or none", self.bandwidth)
        check(0 < self.bandwidth_quantile <= 1, self.name, "bandwidth_quantile", "in (0, 1]", self.bandwidth_quantile)
        check(self.min_cluster_size >= 2, self.name, "min_cluster_size", ">= 2", self.min_cluster_size)
        parts = [part.strip() for part in self.classes.split(",") if part.strip()]
        valid = self.classes.strip().lower() == "all" or (bool(parts) and all(part.isdigit() for part in parts))
        check(valid, self.name, "classes", "'all' or comma-separated class indices", self.classes)

    def training_loss(self, loss: LossComputation) -> LossComputation:
        return adversarial_training_loss(
            loss, eps=self.train_eps, step_size=self.train_step_size, steps=self.train_steps, norm=self.train_norm
        )

    def class_features(
        self, model: ImageClassifier, own: torch.Tensor, seeds: torch.Tensor, target: int
    ) -> tuple[np.ndarray, float]:
        """Steps 1-2 for one class: the features of its training images ``own`` and of the ``seeds`` translated
        toward it; also the fraction of translations the model classifies as ``target``."""
        translated = translate_toward(
            model,
            seeds,
            target,
            eps=self.translate_eps,
            step_size=self.translate_step_size,
            steps=self.translate_steps,
            norm=self.translate_norm,
        )
        translated_features = _features(model, translated)
        with torch.no_grad():
            logits = model.head(torch.from_numpy(translated_features).float().to(seeds.device))
        reached = float((logits.argmax(1) == target).float().mean())
        features = np.concatenate([_features(model, own), translated_features]) if len(own) else translated_features
        return features, reached

    def robust_verdicts(self, model: ImageClassifier, x: torch.Tensor, y: torch.Tensor, seed: int) -> np.ndarray:
        """Per image of ``x`` (float images in [0, 1]): still classified as ``y`` after PGD with the robust-training
        budget from a random start."""
        generator = torch.Generator(device=x.device).manual_seed(seed)
        correct = []
        for start in range(0, len(x), BATCH):
            part, labels = x[start : start + BATCH], y[start : start + BATCH]
            attacked = pgd_perturb(
                model, part, labels, eps=self.train_eps, step_size=self.train_step_size, steps=self.train_steps,
                generator=generator, norm=self.train_norm,
            )
            with torch.no_grad():
                correct.append((model(attacked).argmax(1) == labels).cpu().numpy())
        return np.concatenate(correct)

    def adversarial_accuracy(self, model: ImageClassifier, x: torch.Tensor, y: torch.Tensor, seed: int) -> float:
        """The share of :meth:`robust_verdicts` that hold: the check that the model is robust, which AEGIS assumes
        (section III)."""
        return float(self.robust_verdicts(model, x, y, seed).mean())

    def judge(self, features: dict[int, np.ndarray], own_counts: dict[int, int], seed: int = 0) -> ModelVerdict:
        """Steps 3-4 and the decision, on each examined class's features (its training images' first, then its
        translations'; ``own_counts`` says how many of the first kind)."""
        classes = sorted(features)
        embeddings = {c: embed(features[c], perplexity=self.perplexity, seed=seed) for c in classes}
        bandwidths: dict[int, float | None] = {c: None for c in classes}
        if self.clusterer == "mean-shift":
            if self.bandwidth is not None:
                bandwidths = {c: self.bandwidth for c in classes}
            else:
                estimates = {c: bandwidth_of(embeddings[c], self.bandwidth_quantile) for c in classes}
                shared = float(np.median(list(estimates.values())))
                bandwidths = estimates if self.bandwidth_scope == "class" else {c: shared for c in classes}
        labels = {
            c: cluster_labels(
                embeddings[c], self.clusterer, bandwidth=bandwidths[c], min_cluster_size=self.min_cluster_size
            )
            for c in classes
        }
        counts = {c: _count(labels[c]) for c in classes}
        translated = {c: translation_clusters(labels[c], own_counts[c]) for c in classes}
        translated_counts = {c: _count(translated[c]) for c in classes}
        counted, counted_labels = counts, labels
        if self.rule == "fixed":
            bounds = {c: float(self.clean_clusters - (own_counts[c] == 0)) for c in classes}
        elif self.rule == "median":
            median = float(np.median(list(counts.values())))
            bounds = {c: median for c in classes}
        else:
            bounds = {c: 1.0 for c in classes}
            counted, counted_labels = translated_counts, translated
        scores = {}
        for c in classes:
            excess = counted[c] - bounds[c]
            scores[c] = excess + (extra_mass(counted_labels[c], math.floor(bounds[c])) if excess > 0 else 0.0)
        suspects = [c for c in classes if counted[c] > bounds[c]]
        details: dict[str, object] = {
            "cluster_counts": {str(c): counts[c] for c in classes},
            "translation_cluster_counts": {str(c): translated_counts[c] for c in classes},
            "bounds": {str(c): bounds[c] for c in classes},
            "class_scores": {str(c): scores[c] for c in classes},
            "clean_images": {str(c): own_counts[c] for c in classes},
            "bandwidth": {str(c): (None if b is None else round(b, 6)) for c, b in bandwidths.items()},
        }
        return ModelVerdict(
            score=float(max(scores.values())), flagged=bool(suspects), suspect_classes=suspects, details=details
        )

    def inspect_model(self, context: ModelContext) -> ModelVerdict:
        model = context.model
        model.eval()
        trainer, rng = context.trainer, context.rng
        classes = parse_classes(self.classes, context.num_classes)
        if len(context.clean_y) == 0 or len(context.train_y) == 0:
            raise BenchbdError("aegis: the defender needs held-out clean images and the clean training set")
        checked = np.sort(rng.choice(len(context.clean_y), size=min(self.robustness_images, len(context.clean_y)), replace=False))
        robust = self.adversarial_accuracy(
            model, trainer.images(context.clean_x[checked]).float() / 255, trainer.labels(np.asarray(context.clean_y)[checked]),
            seed=int(rng.integers(2**31)),
        )
        interval = [round(bound, 4) for bound in binomial_interval(robust, len(checked))]
        details: dict[str, object] = {"adversarial_accuracy": round(robust, 4), "adversarial_accuracy_interval": interval,
                                      "robustness_images": len(checked)}
        if robust < self.min_adversarial_accuracy:
            budget = f"{self.train_norm} {self.train_eps:.4g}, {self.train_steps} steps"
            reason = (f"not robust: adversarial accuracy {robust:.1%} under PGD ({budget}) is below "
                      f"min_adversarial_accuracy {self.min_adversarial_accuracy:.0%}; AEGIS assumes a robust model")
            return ModelVerdict(score=0.0, flagged=False, details=details, not_judged=reason)
        verdict = majority([self.single_run(context, classes, f"run {r + 1}/{self.runs}") for r in range(self.runs)], classes)
        verdict.details = {**details, **verdict.details}
        verdict.examined_classes = classes
        return verdict

    def single_run(self, context: ModelContext, classes: list[int], label: str) -> ModelVerdict:
        """One run of steps 1-4 on the examined ``classes``, its draws (seeds, class images, t-SNE seed) from
        ``context.rng``; ``label`` names it in the progress reports."""
        trainer, rng = context.trainer, context.rng
        y_train = np.asarray(context.train_y)
        count = min(self.seeds, len(y_train))
        seeds = trainer.images(context.train_x[np.sort(rng.choice(len(y_train), size=count, replace=False))]).float() / 255
        features, own_counts, reached = {}, {}, {}
        for done, target in enumerate(classes):
            context.progress(f"{label}, classes translated", done, len(classes))
            members = np.flatnonzero(y_train == target)
            own_index = np.sort(rng.choice(members, size=min(self.class_images, len(members)), replace=False))
            own = trainer.images(context.train_x[own_index]).float() / 255
            features[target], reached[target] = self.class_features(context.model, own, seeds, target)
            own_counts[target] = len(own_index)
        verdict = self.judge(features, own_counts, seed=int(rng.integers(2**31)))
        verdict.details["translation_success"] = {str(c): round(reached[c], 4) for c in classes}
        verdict.details["seeds"] = count
        return verdict


@hookimpl
def benchbd_defenses() -> list[type[ModelDefense]]:
    return [AEGIS]
