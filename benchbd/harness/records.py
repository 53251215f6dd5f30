"""The records a table or an export reads: each cell's latest, and a run's records as a pandas DataFrame."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchbd.errors import BenchbdError
from benchbd.harness.metrics import tpr_at_fpr
from benchbd.harness.results import INVOCATIONS, RESULTS, check_one_setting, latest_per_seed, read_records


def latest_records(run_dir: str | Path) -> tuple[list[dict[str, Any]], int]:
    """The records the leaderboard and :func:`load_results` read: each cell's latest (:func:`latest_per_seed`),
    refused when they come from several settings, in the order of :func:`planned_order`, and how many earlier ones
    were left out. A model-unit cell's ``tpr_at_fpr`` is read off its ``model_scores`` (:func:`population_tpr_at_fpr`),
    since records written before 5faef96 hold the TPR at no clean model flagged there."""
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        raise BenchbdError(f"{run_dir}: no {RESULTS} here (is it a benchbd run directory?)")
    records = read_records(path)
    check_one_setting(records, run_dir)
    latest, superseded = latest_per_seed(records)
    latest = sorted(latest, key=planned_order(read_records(Path(run_dir) / INVOCATIONS)))
    return [{**r, "tpr_at_fpr": population_tpr_at_fpr(r)} if r.get("unit") == "model" and r["status"] == "ok" else r
            for r in latest], superseded


def planned_order(invocations: list[dict[str, Any]]) -> Callable[[dict[str, Any]], tuple[int, int]]:
    """A sort key that puts records in the order the invocations' blocks name their attacks and defenses, the
    first invocation first, as a local run appends them: the tables' rows and columns, which follow the records'
    order, are then the same whichever order the cells finished in (Ray's completion order, seeds joined from
    several machines). Names no invocation gives (a results file without its ``invocations.jsonl``) come after,
    in the order of their lines (the sort is stable)."""
    attacks: dict[str, int] = {}
    defenses: dict[str, int] = {}
    for invocation in invocations:
        for block in invocation.get("config", {}).get("blocks", []):
            for name in block.get("attacks", []):
                attacks.setdefault(name, len(attacks))
            for name in block.get("defenses", []):
                defenses.setdefault(name, len(defenses))

    def key(record: dict[str, Any]) -> tuple[int, int]:
        attack = min((attacks.get(name, len(attacks)) for name in record["attacks"]), default=-1)
        return attack, defenses.get(record["defense"], len(defenses))

    return key


def load_results(run_dir: str | Path) -> pd.DataFrame:
    """The cells of a run directory as a DataFrame, one row per cell: :func:`latest_records` (a cell computed again
    after a change of code or settings has one row, as in the leaderboard).

    Per-attack objects become columns: ``asr`` → ``asr.patch``, ``asr_after.patch``, ``auroc_per_attack.patch``,
    ``targets.patch``. ``attacks`` stays a list; ``attack_set`` joins it with "+".
    """
    frame = pd.json_normalize(latest_records(run_dir)[0], max_level=1)
    if not frame.empty:
        frame.insert(0, "attack_set", frame["attacks"].map("+".join))
    return frame


def population_tpr_at_fpr(record: dict[str, Any]) -> dict[str, float | None] | None:
    """The record's ``tpr_at_fpr`` read off its ``model_scores`` as the model unit's ``judge`` computes it (the TPR at each
    fixed FPR over the judged models, None where too few clean models were judged to measure it; None for all
    where no backdoored or no clean model was judged), for records written before that rule."""
    scores = [record["model_scores"]["backdoored"], *record["model_scores"]["clean"]]
    judged = [score is not None for score in scores]
    positive = np.array([bool(record["attacks"])] + [False] * (len(scores) - 1))[judged]
    if not (positive.any() and (~positive).any()):
        return None
    return tpr_at_fpr(positive, np.array([s for s in scores if s is not None], dtype=float))


def after_field(record: dict[str, Any], field: str) -> str:
    """The record's field holding ``field`` (``asr``, ``clean_acc``, ...) after mitigation: an undefended
    baseline's (unit ``none``) is the poisoned model's own ``field``, as nothing was mitigated."""
    return field if record["unit"] == "none" else f"{field}_after"
