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

from benchbd.harness.results import after_field  # noqa: E402

HEATMAPS = {
    "auroc": ("Detection AUROC over training examples (one attack)", "auroc", "viridis"),
    "asr_after": ("ASR after mitigation (one attack, %)\n{asr_label}", "asr_after", "magma_r"),
}


def _matrix(records: list[dict[str, Any]], field: str) -> pd.DataFrame:
    rows = []
    for r in records:
        if r.get("mode") != "single" or r.get("status") != "ok" or not r["attacks"] or r["unit"] not in ("example", "none"):
            continue
        attack = r["attacks"][0]
        if field == "auroc" and r.get("auroc") is not None:
            rows.append((r["defense"], attack, r["auroc"]))
        elif field == "asr_after":
            after = r.get(after_field(r, "asr"))
            if after and attack in after:
                rows.append(("No Defense" if r["unit"] == "none" else r["defense"], attack, 100 * after[attack]))
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows, columns=["defense", "attack", "value"])
    return frame.pivot_table(index="defense", columns="attack", values="value", aggfunc="mean", sort=False)


def write_heatmaps(records: list[dict[str, Any]], folder: Path, asr_label: str) -> dict[str, Path]:
    """Write one PNG per heatmap that has data; returns {heatmap name: path}. ``asr_label`` says which ASR the
    records' ``asr`` fields hold (e.g. "trigger as trained")."""
    written = {}
    for name, (title, field, colormap) in HEATMAPS.items():
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
        axes.set_title(title.format(asr_label=asr_label), fontsize=10)
        figure.colorbar(image, ax=axes)
        figure.tight_layout()
        path = Path(folder) / f"heatmap-{name}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written[name] = path
    return written
