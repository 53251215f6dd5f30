"""Heatmaps of a run's one-attack cells of the training-example unit (defense × attack), as PNG files: detection
AUROC over the training examples (Table 1's) and ASR after mitigation (Table 2's), whose title says which ASR it
shows. The model and training-run units' AUROC is over models and servers, another measure: their Tables 4-5
have it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchbd.leaderboard.cells import asr_of, made_before_code_digests, mitigation_rows, scaled_mean, seed_values  # noqa: E402

#: name: title, the title's addition when records predate code digests (issue 15's protocol), field, colour map.
HEATMAPS = {
    "auroc": ("Detection AUROC (one attack)\nover training examples", "; old records: trusted ones counted",
              "auroc", "viridis"),
    "asr_after": ("ASR after mitigation (one attack, %)\ntrigger as trained", "; old records: boosted ×2", "asr_after",
                  "magma_r"),
}


def _matrix(records: list[dict[str, Any]], field: str) -> pd.DataFrame:
    """Defense × attack means over seeds, as Tables 1-2 show them: a cell the table cannot give a value
    (:func:`~benchbd.leaderboard.cells.seed_values`: a failed seed, a value not recorded or undefined) is left
    blank; the rows and their labels are the mitigation tables' (:func:`~benchbd.leaderboard.cells.mitigation_rows`:
    each baseline its own row, first)."""
    units = ("example",) if field == "auroc" else ("example", "none")
    selected = [r for r in records if r.get("mode") == "single" and r["attacks"] and r["unit"] in units]
    if not selected:
        return pd.DataFrame()
    rows = mitigation_rows(pd.DataFrame(selected))  # (defense, label) in the tables' order, baselines first
    attacks = list(dict.fromkeys(r["attacks"][0] for r in selected))
    table = pd.DataFrame(np.nan, index=[label for _, label in rows], columns=attacks)
    for name, label in rows:
        for attack in attacks:
            cell = [r for r in selected if r["defense"] == name and r["attacks"][0] == attack]
            value, scale = (lambda r: r["auroc"], 1) if field == "auroc" else (asr_of(attack, "asr"), 100)
            values = seed_values(cell, value) if cell else None
            if isinstance(values, list):
                table.loc[label, attack] = scaled_mean(values, scale)
    return table


def write_heatmaps(records: list[dict[str, Any]], folder: Path) -> dict[str, Path]:
    """Write one PNG per heatmap that has data; returns {heatmap name: path}."""
    written = {}
    old = any(made_before_code_digests(r) for r in records)
    for name, (title, old_title, field, colormap) in HEATMAPS.items():
        table = _matrix(records, field)
        if table.empty:
            continue
        # The attack labels are slanted under the map: long ones (``blend-random (ratio=0.08)``) need the height.
        label_height = 0.05 * max(len(str(column)) for column in table.columns)
        figure, axes = plt.subplots(figsize=(max(4.5, 2.5 + 1.0 * table.shape[1]), 1.2 + 0.45 * table.shape[0] + label_height))
        values = table.to_numpy(dtype=float)
        image = axes.imshow(values, cmap=colormap, aspect="auto",
                            vmin=0, vmax=1 if field == "auroc" else 100)
        axes.set_xticks(range(table.shape[1]), table.columns, rotation=30, ha="right")
        axes.set_yticks(range(table.shape[0]), table.index)
        for (i, j), value in np.ndenumerate(values):
            if not np.isnan(value):
                axes.text(j, i, f"{value:.2f}" if field == "auroc" else f"{value:.0f}", ha="center", va="center",
                          color="white" if (value < 0.5 if field == "auroc" else value > 50) else "black", fontsize=8)
        axes.set_title(title + (old_title if old else ""), fontsize=10)
        figure.colorbar(image, ax=axes)
        figure.tight_layout()
        path = Path(folder) / f"heatmap-{name}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written[name] = path
    return written
