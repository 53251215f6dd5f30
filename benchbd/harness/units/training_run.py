"""The training-run unit: a defense judges the servers that train a client's job; ground truth is which servers
are malicious.

The threat model is the unit's, not the defense's (:class:`benchbd.harness.servers.Simulation`, set with ``-P simulation.FIELD=VALUE`` or a
``[simulation]`` TOML table): an adaptive attacker is a different experiment, not a variant of the defense. The
client's job is the cell's clean training; the servers are :mod:`benchbd.harness.servers`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from benchbd.defenses import Server, TrainingRunContext, TrainingRunDefense, no_progress
from benchbd.errors import BenchbdError
from benchbd.harness.metrics import detection_metrics
from benchbd.harness.servers import build_servers
from benchbd.harness.units.model import defender_clean, labelled
from benchbd.models import ImageClassifier
from benchbd.training.trainer import TrainingRun
from benchbd.harness.workbench import PoisonedGroup, Workbench


def training_run_context(
    servers: list[Server], job: TrainingRun, new_model: Callable[[], ImageClassifier], *, reference_x: np.ndarray,
    rng: np.random.Generator, malicious_fraction: float, progress: Callable[[str, int, int], None] = no_progress,
) -> TrainingRunContext:
    """The :class:`TrainingRunContext` of a client's ``job`` (not yet run) outsourced to ``servers``, as the
    harness, the conformance kit and the tests build it."""
    return TrainingRunContext(
        servers=servers, initial=job.checkpoint(), total_steps=job.total_steps, new_model=new_model,
        trainer=job.trainer, reference_x=reference_x, rng=rng, malicious_fraction=malicious_fraction, progress=progress,
    )


def judge(bench: Workbench, state: PoisonedGroup, defense: TrainingRunDefense, name: str) -> dict[str, Any]:
    """Simulate the servers for the client's job, some running the cell's attacks, and let the defense judge them."""
    plan, group, data, simulation = bench.plan, state.group, bench.data, bench.plan.simulation
    seed = group.seed
    rng = plan.stream(group, "servers", name)
    malicious_count = simulation.malicious_count if state.attacks else 0  # no attack: every server is benign
    malicious = rng.permutation(np.arange(simulation.servers) < malicious_count)
    servers = build_servers(
        data, lambda: bench.new_attacks(group), malicious, bench.trainer, lambda: bench.fresh_model(seed),
        simulation.backdoor_lr_ratio, rng, job_seed=seed, variation=simulation.replica_variation, kernel_noise=simulation.kernel_noise,
    )
    job = TrainingRun(state.trainer, bench.fresh_model(seed), data.x_train, data.y_train, label="client job")
    context = training_run_context(
        list(servers), job, lambda: bench.fresh_model(seed),
        reference_x=defender_clean(data.x_test, data.y_test, plan.stream(group, "defender-clean"))[0],
        rng=plan.stream(group, "defense", name), malicious_fraction=simulation.malicious_fraction,
        progress=labelled(bench.step, name),
    )
    verdict = defense.judge_servers(context)
    scores = np.asarray(verdict.scores, dtype=np.float64)
    flagged = np.asarray(verdict.flagged, dtype=bool)
    n = simulation.servers
    if scores.shape != (n,) or flagged.shape != (n,):
        raise BenchbdError(f"{name}: expected {n} server scores and flags, got shapes {scores.shape} and {flagged.shape}")
    if not np.isfinite(scores).all():
        raise BenchbdError(f"{name}: {int((~np.isfinite(scores)).sum())} server scores are not finite")
    return {
        **detection_metrics(scores, flagged, malicious),
        "servers": n,
        "malicious_servers": malicious_count,
        "server_malicious": malicious.tolist(),  # which servers ran the attacks, and which the defense flagged
        "server_flagged": flagged.tolist(),
        "extra_steps": int(verdict.extra_steps),
        "overhead_frac": verdict.extra_steps / (n * job.total_steps),
        "details": verdict.details,
    }
