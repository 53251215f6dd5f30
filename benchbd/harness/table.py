"""Results as data: a run's records as a pandas DataFrame, one row per cell, nested fields flattened."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchbd.errors import BenchbdError
from benchbd.harness.results import RESULTS, check_one_setting, latest_per_seed, read_records
from benchbd.harness.units.model import population_tpr_at_fpr


def load_results(run_dir: str | Path) -> pd.DataFrame:
    """The cells of a run directory as a DataFrame, each cell's latest record (:func:`latest_per_seed`: a cell
    computed again after a change of code or settings has one row, as in the leaderboard).

    Per-attack objects become columns: ``asr`` → ``asr.patch``, ``asr_after.patch``, ``auroc_per_attack.patch``,
    ``targets.patch``. ``attacks`` stays a list; ``attack_set`` joins it with "+". A model-unit cell's
    ``tpr_at_fpr`` is read off its ``model_scores``, as in Table 4 (:func:`~benchbd.harness.units.model.population_tpr_at_fpr`).
    """
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        raise BenchbdError(f"{run_dir}: no {RESULTS} here (is it a benchbd run directory?)")
    records = read_records(path)
    check_one_setting(records, run_dir)
    latest = [{**r, "tpr_at_fpr": population_tpr_at_fpr(r)} if r.get("unit") == "model" and r["status"] == "ok" else r
              for r in latest_per_seed(records)[0]]
    frame = pd.json_normalize(latest, max_level=1)
    if not frame.empty:
        frame.insert(0, "attack_set", frame["attacks"].map("+".join))
    return frame
