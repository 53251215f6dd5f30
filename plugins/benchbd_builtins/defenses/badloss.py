"""``badloss``: BaDLoss, backdoor detection via loss dynamics (anonymous ICLR submission; seed paper).

Appendix A.1's algorithm: write clean, backdoor and mislabelled probes into the training set
(:mod:`benchbd_builtins.defenses.probes`), train a fresh model of the cell's architecture on it while recording
every example's loss after every epoch (section 3.2, step 2), and label every other example with a k-NN over the
probes' loss trajectories under the ℓ2 distance (footnote 1): an example whose share of anomalous (backdoor or
mislabelled) neighbours exceeds ``threshold`` (0.1, section 5) is rejected. The harness then retrains on the
original training set minus the rejected examples (steps 8-9); the probes exist only in the probationary run.

Choices the paper leaves open, made here:

- Score for AUROC: the anomalous-neighbour share plus ``closeness / (k + 1)``, where closeness =
  d_clean / (d_clean + d_anomalous) ∈ [0, 1] compares the mean distances to the k nearest clean and k nearest
  anomalous probes. The term is below one vote (1/k), so it only breaks ties between equal shares.
- Probe positions as appendix A.1 says (:func:`inject_probes`): P1 and P2 from the trusted examples C, P3 from
  the rest of D. An example P3 overwrites has no trajectory of its own: it is not judged (``ExampleVerdict.judged``
  is False there, so detection metrics leave it out) and never rejected, so it stays in the retraining set, as in
  the paper's step 8. Trusted examples are known clean to the defender: score 0, never rejected.
- ``k``: ``None`` takes the paper's (section 5.1: 20 with one attack; section 5.2: 30 on CIFAR-10, 10 on GTSRB
  with several); ``select_k`` instead picks the k whose leave-one-out AUROC over the probes is highest
  (section 5.2's suggestion), the smallest such k on ties.
- ``probes`` is n, per probe set, times ``ExampleContext.probe_multiplier`` (3 against the warping attack alone,
  section 5.1), every set alike (ours: the paper does not say which sets grow; alike, the k-NN's clean and
  anomalous references keep their balance). The harness's trusted set holds 2 × 250 × that multiplier unless
  ``--trusted`` says otherwise, so a larger n needs ``--trusted``. Sets that come out smaller (a trusted set under
  2n; the clean-label sinusoid probe, bound to one class of the trusted examples) are warned about in the
  verdict's ``details``, kept with the record.
- ``reference="clean"`` is section 6.3's probe-free variant: no probes are injected, the trusted examples'
  trajectories are the clean reference, an example's score is its mean distance to the k nearest of them, and the
  examples above the (1 − ``reference_fpr``) quantile of the trusted examples' own (leave-one-out) scores are
  rejected. Section 6.3 says "average distance to the clean trajectories"; the k nearest make it local.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator, Literal

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.metrics import roc_auc_score

from benchbd import BenchbdError, ExampleContext, ExampleDefense, ExampleVerdict, hookimpl
from benchbd.params import check
from benchbd_builtins.defenses.probes import ProbeSet, inject_probes

#: The k values the leave-one-out selection tries (section 5.2).
K_CANDIDATES = (1, 3, 5, 10, 15, 20, 25, 30, 40, 50)
#: Queries per block of the distance matrix, to bound memory on large training sets.
BLOCK = 4096


def _distance_blocks(
    queries: np.ndarray, references: np.ndarray, leave_one_out: bool
) -> Iterator[tuple[slice, np.ndarray]]:
    """ℓ2 distances from blocks of ``queries`` to every reference; with ``leave_one_out`` the queries are the
    references themselves and each one's distance to itself is infinite."""
    for start in range(0, len(queries), BLOCK):
        block = slice(start, min(start + BLOCK, len(queries)))
        distances = cdist(queries[block], references)
        if leave_one_out:
            rows = np.arange(block.stop - block.start)
            distances[rows, rows + start] = np.inf
        yield block, distances


def _mean_smallest(distances: np.ndarray, k: int) -> np.ndarray:
    return np.partition(distances, k - 1, axis=1)[:, :k].mean(axis=1)


def neighbour_votes(
    queries: np.ndarray, probes: np.ndarray, anomalous: np.ndarray, k: int, *, leave_one_out: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The k-NN of appendix A.1 step 7: for each query trajectory, the share of anomalous probes among its k
    nearest (ℓ2), and that share plus the tie-breaking closeness term (module docstring) as a score.

    With ``leave_one_out`` the queries are the probes themselves, each excluded from its own neighbours.
    """
    anomalous = np.asarray(anomalous, dtype=bool)
    available = len(probes) - int(leave_one_out)
    k_clean = min(k, int((~anomalous).sum()) - int(leave_one_out))
    k_anomalous = min(k, int(anomalous.sum()) - int(leave_one_out))
    if not 1 <= k <= available or k_clean < 1 or k_anomalous < 1:
        raise BenchbdError(f"badloss: k = {k} needs more probes of each kind ({len(probes)} probes)")
    fraction = np.empty(len(queries))
    closeness = np.empty(len(queries))
    for block, distances in _distance_blocks(queries, probes, leave_one_out):
        nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
        fraction[block] = anomalous[nearest].mean(axis=1)
        to_clean = _mean_smallest(distances[:, ~anomalous], k_clean)
        to_anomalous = _mean_smallest(distances[:, anomalous], k_anomalous)
        total = to_clean + to_anomalous
        closeness[block] = np.divide(to_clean, total, out=np.full(len(total), 0.5), where=total > 0)
    return fraction, fraction + closeness / (k + 1)


def select_k(probes: np.ndarray, anomalous: np.ndarray, candidates: tuple[int, ...] = K_CANDIDATES) -> int:
    """The k whose leave-one-out k-NN scores separate the probes best (AUROC; section 5.2), smallest on ties."""
    anomalous = np.asarray(anomalous, dtype=bool)
    largest = min(int(anomalous.sum()), int((~anomalous).sum())) - 1
    usable = [k for k in candidates if 1 <= k <= largest]
    if not usable:
        raise BenchbdError(f"badloss: too few probes to choose k ({len(probes)} probes)")
    aurocs = [
        roc_auc_score(anomalous, neighbour_votes(probes, probes, anomalous, k, leave_one_out=True)[1]) for k in usable
    ]
    return usable[int(np.argmax(aurocs))]


def mean_nearest_distance(
    queries: np.ndarray, references: np.ndarray, k: int, *, leave_one_out: bool = False
) -> np.ndarray:
    """Mean ℓ2 distance of each query trajectory to its k nearest references (section 6.3's probe-free score)."""
    k = min(k, len(references) - int(leave_one_out))
    if k < 1:
        raise BenchbdError("badloss: the probe-free reference needs at least two trusted examples")
    distances = np.empty(len(queries))
    for block, block_distances in _distance_blocks(queries, references, leave_one_out):
        distances[block] = _mean_smallest(block_distances, k)
    return distances


def loss_trajectories(context: ExampleContext, x: np.ndarray, y: np.ndarray, label: str) -> np.ndarray:
    """Train a fresh model of the cell's architecture on (x, y) with the cell's trainer and return every example's
    loss after every epoch, shape (N, epochs) (section 3.2, step 2)."""
    trainer = context.trainer
    x_device, y_device = trainer.images(x), trainer.labels(y)
    losses: list[np.ndarray] = []
    trainer.fit(
        context.new_model(),
        x_device,
        y_device,
        label=label,
        callbacks=[lambda end: losses.append(end.trainer.per_example_loss(end.model, x_device, y_device))],
    )
    return np.stack(losses, axis=1)


@dataclass
class BaDLoss(ExampleDefense):
    name: ClassVar[str] = "badloss"
    description: ClassVar[str] = "BaDLoss: k-NN of per-example loss trajectories against injected probes (appendix A.1)"

    probes: int = 250
    k: int | None = None
    select_k: bool = False
    threshold: float = 0.1
    reference: Literal["probes", "clean"] = "probes"
    reference_fpr: float = 0.1

    def __post_init__(self) -> None:
        check(self.probes >= 1, self.name, "probes", "at least 1", self.probes)
        if self.k is not None:
            check(self.k >= 1, self.name, "k", "at least 1 or none", self.k)
            check(not self.select_k, self.name, "k", "none when select_k is on", self.k)
        probes_only = not self.select_k or self.reference == "probes"
        check(probes_only, self.name, "select_k", "off with reference=clean", self.select_k)
        check(0 <= self.threshold < 1, self.name, "threshold", "in [0, 1)", self.threshold)
        check(0 < self.reference_fpr < 1, self.name, "reference_fpr", "in (0, 1)", self.reference_fpr)

    def score_examples(self, context: ExampleContext) -> ExampleVerdict:
        n = len(context.y_train)
        scores = np.zeros(n)
        flagged = np.zeros(n, dtype=bool)
        judged = np.ones(n, dtype=bool)
        judged[context.trusted_clean] = False
        details: dict[str, object] = {}
        if self.reference == "probes":
            probes = inject_probes(context, self.probes * context.probe_multiplier)
            judged[probes.mislabeled] = False
            scores[judged], flagged[judged], details["k"] = self.judge_by_probes(context, probes, np.flatnonzero(judged))
            details["probes"] = {"clean": len(probes.clean), "backdoor": len(probes.backdoor), "mislabelled": len(probes.mislabeled)}
            if probes.warnings:
                details["warnings"] = probes.warnings
        else:
            scores[judged], flagged[judged] = self.judge_by_clean_reference(context, np.flatnonzero(judged))
        return ExampleVerdict(scores, flagged, judged, details)

    def judge_by_probes(self, context: ExampleContext, probes: ProbeSet, judged: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Appendix A.1 steps 5-7: scores and rejections of the ``judged`` examples by the k-NN over the probes'
        loss trajectories, and the k used."""
        trajectories = loss_trajectories(context, probes.x, probes.y, "badloss probationary run")
        probe_trajectories = trajectories[probes.indices]
        if self.select_k:
            k = select_k(probe_trajectories, probes.anomalous)
        else:
            k = self.k or self.default_k(context)
        fraction, scores = neighbour_votes(trajectories[judged], probe_trajectories, probes.anomalous, k)
        return scores, fraction > self.threshold, k

    def judge_by_clean_reference(self, context: ExampleContext, judged: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Section 6.3: distance to the trusted examples' trajectories, rejected above their own quantile."""
        trusted = context.trusted_clean
        trajectories = loss_trajectories(context, context.x_train, context.y_train, "badloss probationary run")
        k = self.k or self.default_k(context)
        own = mean_nearest_distance(trajectories[trusted], trajectories[trusted], k, leave_one_out=True)
        scores = mean_nearest_distance(trajectories[judged], trajectories[trusted], k)
        return scores, scores > np.quantile(own, 1 - self.reference_fpr)

    @staticmethod
    def default_k(context: ExampleContext) -> int:
        """Section 5.1: 20 with one attack; section 5.2: 10 on GTSRB, 30 elsewhere (CIFAR-10) with several."""
        if context.single_attack:
            return 20
        return 10 if context.data.family == "gtsrb" else 30


@hookimpl
def benchbd_defenses() -> list[type[ExampleDefense]]:
    return [BaDLoss]
