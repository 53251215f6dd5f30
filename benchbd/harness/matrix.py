"""The matrix: every (attack set, defense, seed) cell on one dataset, model and training profile.

The data flow of a cell (docs/architecture.md): the dataset → attacks poison its training set (or wrap the loss
computation) → the trainer trains the poisoned model → the defense judges its unit → metrics against ground truth →
one record appended to ``results.jsonl`` → the leaderboard. This module ties the pieces together: the plan
(:mod:`.plan`) says which cells there are and which are finished, an executor (:mod:`.executors`) runs the
groups, and every record is appended as it arrives, so a crash loses no finished cell.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchbd.errors import BenchbdError
from benchbd.harness.environment import cpu_setting, environment
from benchbd.harness.executors import run_local, run_on_ray
from benchbd.harness.config import MatrixConfig
from benchbd.harness.plan import Plan
from benchbd.harness.progress import Progress, cell_name
from benchbd.harness.results import RunDirectory, describe_setting
from benchbd.registry import Registry


@dataclass
class RunSummary:
    run_dir: Path
    done: int
    skipped: int
    failed: list[str]


def warn_of_other_cpu_settings(records: list[dict[str, Any]], here: dict[str, Any]) -> None:
    """Warn when this CPU invocation joins records computed under another instruction set or thread count: its cells
    will train other models than those would have (docs/findings.md, "float32 on a CPU"), and the table mixes both."""
    ours = cpu_setting(here)
    if ours is None:
        return
    earlier = {cpu_setting(r["environment"]) for r in records if r.get("environment")} - {ours, None}
    if earlier:
        warnings.warn(f"this run directory holds CPU records computed under {', '.join(sorted(earlier))}, and this run "
                      f"computes under {ours}: float32 training differs between them, so its new cells are "
                      "not the computation the others are (set OMP_NUM_THREADS, or ATEN_CPU_CAPABILITY and "
                      "ONEDNN_MAX_CPU_ISA, to match)", stacklevel=2)


class Matrix:
    """Plans the cells of a :class:`MatrixConfig` (refusing bad input before any training) and runs them."""

    def __init__(self, config: MatrixConfig, registry: Registry, progress: Progress) -> None:
        self.plan = Plan(config, registry)
        self.progress = progress

    def run(self) -> RunSummary:
        run_dir = RunDirectory(self.plan.config.out or self.plan.default_out())
        try:
            return self._run(run_dir)
        finally:
            run_dir.close()

    def _run(self, run_dir: RunDirectory) -> RunSummary:
        plan = self.plan
        existing = run_dir.records()
        ours = describe_setting(plan.setting)
        others = sorted({describe_setting(r) for r in existing} - {ours})
        if others:
            raise BenchbdError(f"{run_dir.path} holds records of {'; '.join(others)}, and this matrix is {ours}: its tables "
                               "would mix them; give this matrix a run directory of its own (--out)")
        here = environment(plan.device)
        if plan.config.executor == "local":  # Ray workers compute under their own settings, which the records name
            warn_of_other_cpu_settings(existing, here)
        run_dir.log_invocation({
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": plan.resolved_config(),
            "environment": here,
        })
        finished = {r["config_hash"] for r in existing if r.get("status") in ("ok", "not_applicable")}
        work = plan.pending(finished)
        planned = {plan.cell_hash(group, name) for group, names in work for name in names}
        skipped = plan.total_cells - sum(len(pending) for _, pending in work)
        self.progress.start(plan.total_cells)
        self.progress.skip(skipped)
        if plan.config.executor == "ray":
            records = run_on_ray(plan.config, run_dir.path, work, use_gpu=plan.device.type == "cuda")
        else:
            records = run_local(plan, run_dir, work, self.progress)
        done, failed = 0, []
        for record in records:
            run_dir.append(record)
            if record["config_hash"] not in planned:
                warnings.warn(f"{cell_name(record)} / seed {record['seed']}: computed with other code than this matrix "
                              "planned with (a plugin or benchbd changed while it ran, or a Ray worker has other files): "
                              "a resume computes it again", stacklevel=2)
            self.progress.cell_finished(record)
            done += 1
            if record["status"] == "error":
                failed.append(f"{cell_name(record)} / seed {record['seed']}: {record['error']}")
        self.progress.finish()
        return RunSummary(run_dir.path, done, skipped, failed)
