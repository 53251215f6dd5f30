"""Results as data: a run's records as a pandas DataFrame, one row per cell, nested fields flattened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from benchbd.errors import BenchbdError
from benchbd.harness.results import RESULTS, check_one_setting, latest_per_seed, read_records
from benchbd.harness.units.model import population_tpr_at_fpr


def latest_records(run_dir: str | Path) -> tuple[list[dict[str, Any]], int]:
    """The records the leaderboard and :func:`load_results` read: each cell's latest (:func:`latest_per_seed`),
    refused when they come from several settings, and how many earlier ones were left out. A model-unit cell's
    ``tpr_at_fpr`` is read off its ``model_scores`` (:func:`~benchbd.harness.units.model.population_tpr_at_fpr`),
    since records written before 5faef96 hold the TPR at no clean model flagged there."""
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        raise BenchbdError(f"{run_dir}: no {RESULTS} here (is it a benchbd run directory?)")
    records = read_records(path)
    check_one_setting(records, run_dir)
    latest, superseded = latest_per_seed(records)
    return [{**r, "tpr_at_fpr": population_tpr_at_fpr(r)} if r.get("unit") == "model" and r["status"] == "ok" else r
            for r in latest], superseded


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
