"""``rttd``: Replicate Training To Detect (Jia, Wyllie, Bin Sediq, Ibrahim & Papernot, "Backdoor Detection through
Replicated Execution of Outsourced Training", arXiv 2504.00170, 2025). Read from the abstract and the figure
captions (figures 1, 2 and 4); the body of the paper was not available, so details below marked *ours* are this
implementation's choices, not the paper's.

Setting (abstract, figure 1): a client outsources its training job to a primary server among n non-colluding
servers, some of them malicious. The job is cut into sub-runs of k optimiser steps; after every sub-run the client
downloads the checkpoint and hands it back for the next one. At the start of a sub-run the job is "probabilistically
submitted" to all n servers (figure 1), so that the primary cannot know which sub-runs are checked: each sub-run the
client may replicate is also given, from the same starting checkpoint W_t, to the n − 1 other servers with
probability p = m / (the number it may replicate), m the expected number of replicated sub-runs (figure 2's m); the
client gets back W_{t+k,1..n} and computes their pairwise distances. A job may draw no replicated sub-run at all
(probability (1 − p)^count): its primary is then not judged and not flagged, as the paper's client would not. Benign servers run the same training process, so their models'
distances form a tight cluster; a server that inserts a backdoor needs updates that differ from clean training.

Decision (figure 4's caption): the client assumes a fraction r of the servers benign. Of the primary's n − 1
distances to the other models it keeps the r·n − 1 smallest: if the primary is benign, these approximate
distance(W_primary, W_c). The benign–benign distribution distance(W_c, W_c) is approximated by a cluster of small
distances among the other servers' models: *ours*, the C(r·n − 1, 2) smallest pairwise distances among the n − 1
others (at least one), the number of benign pairs they hold whether the primary is benign or not, so the cluster is
never built from the primary's own distances. A two-sample Kolmogorov–Smirnov test (``scipy.stats.ks_2samp``) of the
first set against the second flags the primary when it rejects. *Ours*: the test is one-sided (the primary's
distances larger), because a backdoor moves the primary away from the benign models, and with 2 of 4 servers
malicious the "cluster" of a benign primary is often the malicious pair, whose distance is larger than the benign
one: a two-sided test would flag the benign primary for being too close to its benign peer. ``one_sided=False``
gives the two-sided test. r is ``benign_fraction``; unset, it is the threat model's 1 − ``malicious_fraction``
(the paper's experiments assume the fraction they simulate).

Each server is the primary of its own job (:meth:`ReplicatedTraining.judge_servers`): the job runs from
``context.initial`` on the primary, sub-run by sub-run, each sub-run starting from the checkpoint the previous one
returned; the sub-runs its draw replicates run on the other servers too and are tested; the primary is flagged
when any of its T tests rejects at level ``alpha``/T (Bonferroni: at most ``alpha`` family-wise false-alarm
probability per benign primary whatever the dependence between the tests). Its score is the largest −log10 p over
its tests, 0 when it has none.

Distances (on the client's clean reference inputs, ``reference_size`` of them drawn once per call):

- ``output``: the output-space distance, here the mean over inputs of the total-variation distance between the two
  models' softmax outputs, ½‖p_i(x) − p_j(x)‖₁ (the paper's exact output distance is not in the captions);
- ``cka``: 1 − linear CKA (Kornblith et al. 2019) of the two models' penultimate features (``model.features``);
- ``zest``: Zest (Jia et al. 2022), the abstract's first metric and figure 5's: the cosine distance of the two
  models' LIME signatures on the reference inputs (``zest.py``: superpixels, ``lime_samples`` perturbations of
  each input, least-squares weights to the logits). Zest's own reference set is 128 images, RTTD's reference count
  is ``reference_size`` (256 by default, for every distance).

Deviations and choices (*ours*):

- KS samples. In the paper's figure 4 (n = 16) the sample units are model pairs: r·n − 1 = 7 against dozens. With the
  benchmark's default of 4 servers, 2 malicious, that is one distance against one, and no KS test can reject at any
  level. Every pair's distance is therefore measured on each of ``splits`` disjoint equal parts of the reference
  inputs, and the test compares these split-level values (``splits`` times the pairs on each side). This adds the
  measurement's own sampling noise but not the spread between different benign pairs, which one pair cannot show;
  with many servers, ``splits=1`` is the paper's test.
- Normalisation. Both samples of a test are distances between models returned by the same replicated sub-run (same
  W_t, same k) on the same reference splits of equal size, so they are compared as they are: a common rescaling
  would not change a KS test. Distances of different sub-runs are never pooled, since their scale changes with the
  learning rate and the training stage; only their p-values are combined (Bonferroni). The output and CKA
  distances are in [0, 1], Zest's cosine distance in [0, 2]; CKA is invariant to orthogonal transforms and
  isotropic scaling of the features.
- Zest on splits. Zest's reference set is 128 images; here it is ``reference_size`` for every distance (256 by
  default; 128 is Zest's), and each split's Zest distance matches the two models' classes on that split's
  signatures alone (Zest matches them once, over its whole signature).
- Precision. Every returned model is measured in float32, whatever precision the servers train in (a bf16 profile
  on a GPU): the client's measurement should not round away the small distances between benign replicas.
- Which sub-runs. The first sub-run and any sub-run starting before ``earliest`` of the job are never replicated:
  replicas of a barely trained model diverge chaotically and their distances are noise. This leaves an attacker who
  misbehaves only early undetected; ``earliest=0`` replicates any sub-run but the first.
- Work. The primary's own model of a replicated sub-run is its job's sub-run (not run twice); each returned model's
  outputs are computed once; a job is not run past its last replicated sub-run, which cannot change the verdict.
  Nothing is shared between primaries: every job has its own checkpoints, sub-run draw and replicas.
- Overhead: m·k·(n − 1) replicated steps per job in expectation (figure 2's count), in ``details`` with its
  fraction of the job's steps; the steps the draws really replicated are ``extra_steps``, summed over the n jobs.

What detection rests on: the paper's replicas are runs of *the same training process*, whose distances "all fall
into a single bin" (figure 4), and its malicious servers are non-colluding, each inserting its own backdoor. The
harness's ``replica_variation="kernels"`` (one batch order, checkpoints perturbed as non-deterministic kernels
would) is that setting. With ``"data-order"`` (every server its own batch order) benign replicas drift apart by SGD
noise, and a malicious primary, whose own checkpoint W_t already holds its backdoor, may differ from a benign
continuation by less than another batch order does (docs/findings.md, "rttd", measures detection with both).
Malicious servers running one identical poisoned process would be as alike as the benign pair;
with 2 of 4 servers, no distance could say which pair is benign.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
from scipy import stats

from benchbd import TrainingRunContext, TrainingRunDefense, TrainingRunVerdict, hookimpl
from benchbd.errors import BenchbdError
from benchbd.params import check
from benchbd.training.trainer import Checkpoint
from benchbd_builtins.defenses.zest import LimeProbe, lime_signature, zest_distance

Distance = Literal["output", "cka", "zest"]


# -- distances between two models on the same reference inputs -----------------------------------------------------
def output_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Mean total-variation distance between two models' softmax outputs (N×C each) on the same inputs."""
    return float(0.5 * np.abs(p.astype(np.float64) - q.astype(np.float64)).sum(axis=1).mean())


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) of two feature matrices (N×p, N×q) of the same N inputs.

    ‖Yᶜᵀ Xᶜ‖²_F / (‖Xᶜᵀ Xᶜ‖_F ‖Yᶜᵀ Yᶜ‖_F) with Xᶜ, Yᶜ column-centred; 1 for features equal up to an orthogonal
    transform and an isotropic scaling, 0 for unrelated ones. Computed through the N×N Gram matrices.
    """
    xc = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    yc = y.astype(np.float64) - y.mean(axis=0, dtype=np.float64)
    kx, ky = xc @ xc.T, yc @ yc.T
    denominator = np.linalg.norm(kx) * np.linalg.norm(ky)
    if denominator == 0:
        return 1.0 if np.linalg.norm(kx) == np.linalg.norm(ky) else 0.0
    return float(np.sum(kx * ky) / denominator)


def cka_distance(x: np.ndarray, y: np.ndarray) -> float:
    """1 − linear CKA: 0 for identical representations (up to rotation and scale)."""
    return max(0.0, 1.0 - linear_cka(x, y))


def split_distances(outputs: list[np.ndarray], distance: Distance, splits: list[np.ndarray]) -> np.ndarray:
    """Distances between every pair of models, measured on each split of the reference inputs: (S, n, n).

    ``outputs`` are each model's softmax outputs (``output``), penultimate features (``cka``) or Zest signature
    (``zest``) on the same reference inputs, one row per input; ``splits`` index disjoint subsets of them.
    """
    measure = {"output": output_distance, "cka": cka_distance, "zest": zest_distance}[distance]
    n = len(outputs)
    result = np.zeros((len(splits), n, n))
    for s, part in enumerate(splits):
        for i in range(n):
            for j in range(i + 1, n):
                result[s, i, j] = result[s, j, i] = measure(outputs[i][part], outputs[j][part])
    return result


@dataclass
class SubRunTest:
    """The KS test of one replicated sub-run: the primary's selected pairs against the reference pairs."""

    statistic: float
    pvalue: float
    primary_pairs: list[tuple[int, int]]
    reference_pairs: list[tuple[int, int]]
    primary_distance: float
    reference_distance: float


def judge_sub_run(distances: np.ndarray, primary: int, benign: int, one_sided: bool = True) -> SubRunTest:
    """Figure 4's decision for one replicated sub-run (``distances``: (S, n, n), S reference splits).

    The client assumes ``benign`` of the n servers are benign. Of the primary's n − 1 distances it keeps the
    ``benign`` − 1 smallest (distance(W_primary, W_c) if the primary is benign); among the other servers it keeps
    the C(``benign`` − 1, 2) smallest pairwise distances, at least one (the benign pairs the others hold whether
    or not the primary is benign: distance(W_c, W_c)). Both samples are these pairs' distances on every split;
    the two-sample KS test asks whether the primary's are drawn from the benign–benign distribution (one-sided:
    whether they are larger).
    """
    n = distances.shape[1]
    whole = distances.mean(axis=0)
    others = [j for j in range(n) if j != primary]
    keep = min(max(benign - 1, 1), len(others))
    nearest = sorted(others, key=lambda j: (whole[primary, j], j))[:keep]
    primary_pairs = [(primary, j) for j in nearest]
    among = [(i, j) for a, i in enumerate(others) for j in others[a + 1 :]]
    if not among:
        raise BenchbdError("rttd: a replicated sub-run needs at least three models")
    count = min(max(math.comb(max(benign - 1, 0), 2), 1), len(among))
    reference_pairs = sorted(among, key=lambda p: (whole[p], p))[:count]
    primary_values = np.concatenate([distances[:, i, j] for i, j in primary_pairs])
    reference_values = np.concatenate([distances[:, i, j] for i, j in reference_pairs])
    result = stats.ks_2samp(primary_values, reference_values, alternative="less" if one_sided else "two-sided")
    return SubRunTest(
        statistic=float(result.statistic),
        pvalue=float(result.pvalue),
        primary_pairs=primary_pairs,
        reference_pairs=reference_pairs,
        primary_distance=float(primary_values.mean()),
        reference_distance=float(reference_values.mean()),
    )


@dataclass
class ReplicatedTraining(TrainingRunDefense):
    name: ClassVar[str] = "rttd"
    description: ClassVar[str] = (
        "RTTD: replicate random k-step sub-runs of the job on every server; KS test of the primary's model distances "
        "against the benign cluster (Jia et al. 2025)"
    )

    distance: Distance = "output"
    sub_run_steps: int = 50
    replicated: int = 2
    earliest: float = 0.5
    alpha: float = 0.05
    benign_fraction: float | None = None
    splits: int = 8
    reference_size: int = 256
    one_sided: bool = True
    lime_samples: int = 1000

    def __post_init__(self) -> None:
        check(self.sub_run_steps >= 1, self.name, "sub_run_steps", ">= 1", self.sub_run_steps)
        check(self.replicated >= 1, self.name, "replicated", ">= 1", self.replicated)
        check(0 <= self.earliest < 1, self.name, "earliest", "in [0, 1)", self.earliest)
        check(0 < self.alpha < 1, self.name, "alpha", "in (0, 1)", self.alpha)
        if self.benign_fraction is not None:
            check(0 < self.benign_fraction <= 1, self.name, "benign_fraction", "in (0, 1] or none", self.benign_fraction)
        check(self.splits >= 1, self.name, "splits", ">= 1", self.splits)
        check(self.reference_size >= 2 * self.splits, self.name, "reference_size", f">= 2 × splits ({2 * self.splits})", self.reference_size)
        check(self.lime_samples >= 2, self.name, "lime_samples", ">= 2", self.lime_samples)

    # -- the client's plan ------------------------------------------------------------------------------------
    def benign_count(self, n: int, malicious_fraction: float) -> int:
        """r·n: how many of ``n`` servers the client assumes benign (at least 2, a primary and one peer); r is
        ``benign_fraction``, unset 1 − the threat model's declared ``malicious_fraction``."""
        if self.benign_fraction is None:
            count = n - round(n * malicious_fraction)
        else:
            count = math.floor(self.benign_fraction * n + 1e-9)
        return min(max(count, 2), n)

    def sub_runs(self, initial_step: int, total_steps: int) -> tuple[list[int], list[int]]:
        """The job's sub-run start steps, and the indices of those the client may replicate: not the first, none
        starting before ``earliest`` of the job (the last sub-run when no other qualifies)."""
        if total_steps <= initial_step:
            raise BenchbdError(f"{self.name}: the job has no steps left to run ({initial_step} of {total_steps})")
        starts = list(range(initial_step, total_steps, self.sub_run_steps))
        first = initial_step + self.earliest * (total_steps - initial_step)
        eligible = [i for i, step in enumerate(starts) if i >= 1 and step >= first]
        return starts, eligible or [len(starts) - 1]

    def replication_probability(self, eligible: int) -> float:
        """p = ``replicated`` / the number of ``eligible`` sub-runs, 1 when there are fewer."""
        return min(1.0, self.replicated / eligible)

    def replicated_sub_runs(self, eligible: list[int], rng: np.random.Generator) -> list[int]:
        """Figure 1's draw: each of the ``eligible`` sub-runs is replicated with probability
        :meth:`replication_probability`, independently; ``replicated`` sub-runs in expectation, possibly none."""
        p = self.replication_probability(len(eligible))
        return [index for index, draw in zip(eligible, rng.random(len(eligible))) if draw < p]

    # -- the procedure ----------------------------------------------------------------------------------------
    def judge_servers(self, context: TrainingRunContext) -> TrainingRunVerdict:
        servers, rng = context.servers, context.rng
        n = len(servers)
        if n < 3:
            raise BenchbdError(f"{self.name}: needs at least 3 servers; got {n}")
        count = min(self.reference_size, len(context.reference_x))
        if count < 2 * self.splits:
            available = len(context.reference_x)
            raise BenchbdError(f"{self.name}: {available} reference inputs; needs at least {2 * self.splits}")
        # The reference inputs, their splits and Zest's perturbations come from child streams, so that the sub-runs
        # drawn below are the same whatever the distance, the reference size or the split count.
        reference_rng, probe_rng = rng.spawn(2)
        picked = reference_rng.choice(len(context.reference_x), size=count, replace=False)
        reference = context.reference_x[np.sort(picked)]
        size, order = count // self.splits, reference_rng.permutation(count)
        splits = [np.sort(order[s * size : (s + 1) * size]) for s in range(self.splits)]
        probe = LimeProbe.draw(reference, self.lime_samples, probe_rng) if self.distance == "zest" else None
        benign = self.benign_count(n, context.malicious_fraction)
        _, eligible = self.sub_runs(context.initial.step, context.total_steps)
        m, k = min(self.replicated, len(eligible)), self.sub_run_steps
        scores, flagged = np.zeros(n), np.zeros(n, dtype=bool)
        extra_steps = primary_steps = 0
        per_server: list[dict[str, object]] = []
        for primary in range(n):
            picked = self.replicated_sub_runs(eligible, rng)
            tested, steps_run, replica_steps = self._job(
                context, primary, set(picked), reference, probe, splits, benign
            )
            primary_steps, extra_steps = primary_steps + steps_run, extra_steps + replica_steps
            pvalues = [test.pvalue for _, test, _ in tested]
            if pvalues:
                flagged[primary] = min(pvalues) <= self.alpha / len(pvalues)
                scores[primary] = max(-math.log10(max(p, 1e-300)) for p in pvalues) + 0.0  # + 0.0: no −0.0
            per_server.append(
                {
                    "start_step": [step for step, _, _ in tested],
                    "pvalue": pvalues,
                    "ks_statistic": [test.statistic for _, test, _ in tested],
                    "primary_distance": [test.primary_distance for _, test, _ in tested],
                    "reference_distance": [test.reference_distance for _, test, _ in tested],
                    "distances_to_others": [others for _, _, others in tested],
                }
            )
        job_steps = context.total_steps - context.initial.step
        details: dict[str, object] = {
            "distance": self.distance,
            "m": m,
            "replication_probability": self.replication_probability(len(eligible)),
            "k": k,
            "servers": n,
            "assumed_benign": benign,
            "alpha": self.alpha,
            "splits": self.splits,
            "reference_inputs": count,
            "job_steps": job_steps,
            "overhead_steps_per_job": m * k * (n - 1),
            "overhead_fraction": m * k * (n - 1) / job_steps,
            "steps_run_by_primaries": primary_steps,
            "per_server": per_server,
        }
        if probe is not None:
            details["lime_samples"] = self.lime_samples
            details["superpixels_per_reference"] = [len(rows[0]) for rows in probe.keep]
        return TrainingRunVerdict(scores=scores, flagged=flagged, extra_steps=extra_steps, details=details)

    def _job(
        self,
        context: TrainingRunContext,
        primary: int,
        picked: set[int],
        reference: np.ndarray,
        probe: LimeProbe | None,
        splits: list[np.ndarray],
        benign: int,
    ) -> tuple[list[tuple[int, SubRunTest, list[float]]], int, int]:
        """``primary``'s job from ``context.initial``, sub-run by sub-run, up to its last replicated sub-run (none
        when ``picked`` is empty); the sub-runs in ``picked`` also run on every other server from the primary's
        checkpoint and are tested.

        Returns each test with its start step and the primary's distances to the others, the steps the primary ran,
        and the steps the other servers ran for it."""
        servers, k = context.servers, self.sub_run_steps
        tested: list[tuple[int, SubRunTest, list[float]]] = []
        checkpoint, steps_run, replica_steps = context.initial, 0, 0
        for index in range(max(picked, default=-1) + 1):
            start = checkpoint
            checkpoint = servers[primary].run(start, k)
            steps_run += checkpoint.step - start.step
            if index not in picked:
                continue
            returned = [checkpoint if j == primary else server.run(start, k) for j, server in enumerate(servers)]
            replica_steps += sum(model.step - start.step for j, model in enumerate(returned) if j != primary)
            label = (f"server {primary + 1}/{len(servers)}'s job, "
                     f"replicated sub-run {len(tested) + 1}/{len(picked)}: models measured")
            outputs = []
            for model in returned:
                outputs.append(self._outputs(context, model, reference, probe))
                context.progress(label, len(outputs), len(returned))
            distances = split_distances(outputs, self.distance, splits)
            whole = distances.mean(axis=0)[primary]
            others = [float(d) for j, d in enumerate(whole) if j != primary]
            tested.append((start.step, judge_sub_run(distances, primary, benign, self.one_sided), others))
        return tested, steps_run, replica_steps

    def _outputs(
        self, context: TrainingRunContext, checkpoint: Checkpoint, x: np.ndarray, probe: LimeProbe | None
    ) -> np.ndarray:
        """A returned model's softmax outputs (``output``), penultimate features (``cka``) on ``x``, or its Zest
        signature on ``probe`` (``zest``), one row per reference input; computed in float32."""
        model = context.new_model()
        model.load_state_dict(checkpoint.model)
        trainer = context.trainer
        trainer.place(model)
        if self.distance == "cka":
            return trainer.features(model, x, float32=True)
        if self.distance == "zest":
            assert probe is not None
            return lime_signature(probe, lambda images: trainer.logits(model, images, float32=True).cpu().numpy())
        return torch.softmax(trainer.logits(model, x, float32=True), dim=1).cpu().numpy()


@hookimpl
def benchbd_defenses() -> list[type[TrainingRunDefense]]:
    return [ReplicatedTraining]
