"""What makes an AEGIS class show a third cluster? For a cached model of a run directory and the classes named,
translates seed images toward each class as AEGIS does (steps 1-2, the defense's defaults), clusters the class's
own training images with the translations (t-SNE + mean shift, steps 3-4), and prints every cluster's make-up: how
many of the class's own images, how many translations, and the original labels of the seeds whose translations it
holds. Each draw (``--draws``) takes new seed and own images, as each AEGIS run does; the t-SNE seed is the draw's
number.

    python benchmarks/aegis_cluster_composition.py RUN_DIR/models/KEY.pt --classes 2,7 \
        --dataset gtsrb:every=2,classes=10 --model narrow-cnn --bandwidth 23.5

``--bandwidth``: the model's shared mean-shift bandwidth (``details.runs[i].bandwidth`` of its record); without it
each class's own estimate. (docs/findings.md, "aegis", has its output for leaderboard/gtsrb10-cpu-aegis-triggers/.)
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from benchbd.data.images import default_data_root
from benchbd.harness.config import load_dataset
from benchbd.registry import default_registry
from benchbd.training.trainer import resolve_device
from benchbd_builtins.defenses.aegis import AEGIS, cluster_labels, embed


def describe(labels: np.ndarray, own: int, sources: np.ndarray) -> list[str]:
    """One line per cluster, largest first: its size, own images, translations and their commonest seed labels."""
    lines = []
    for cluster, size in Counter(labels.tolist()).most_common():
        members = np.flatnonzero(labels == cluster)
        mine = int((members < own).sum())
        from_seeds = Counter(sources[members[members >= own] - own].tolist()).most_common(4)
        seeds = ", ".join(f"{label}: {count}" for label, count in from_seeds) or "-"
        lines.append(f"    cluster of {size}: own {mine}, translations {size - mine} (seed labels {seeds})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_path", help="a cached model, RUN_DIR/models/KEY.pt")
    parser.add_argument("--classes", required=True, help="comma-separated class indices to examine")
    parser.add_argument("--dataset", default="gtsrb:every=2,classes=10")
    parser.add_argument("--model", default="narrow-cnn")
    parser.add_argument("--data-root", type=Path, help="where the prepared dataset files lie (default: $BENCHBD_DATA or ~/.cache/benchbd)")
    parser.add_argument("--bandwidth", type=float, help="mean-shift bandwidth (default: each class's estimate)")
    parser.add_argument("--draws", type=int, default=3, help="draws of seed and own images per class (default 3)")
    parser.add_argument("--seeds", type=int, default=AEGIS.seeds, help=f"seed images per draw (default AEGIS's {AEGIS.seeds})")
    parser.add_argument("--device", default="auto", help="where the translations run: auto, cpu, cuda (t-SNE stays on the CPU)")
    args = parser.parse_args()
    registry = default_registry()
    data = load_dataset(registry, args.dataset, args.data_root or default_data_root())
    model = registry.get("models", args.model).build(data.num_classes)
    device = resolve_device(args.device)
    model.load_state_dict(torch.load(args.model_path, map_location="cpu", weights_only=True))
    model.to(device).eval()
    aegis = AEGIS(seeds=args.seeds)
    x = torch.from_numpy(data.x_train).permute(0, 3, 1, 2).to(device).float() / 255
    y = np.asarray(data.y_train)
    for target in (int(part) for part in args.classes.split(",")):
        for draw in range(args.draws):
            rng = np.random.default_rng([target, draw])
            members = np.flatnonzero(y == target)
            seed_index = np.sort(rng.choice(len(y), min(aegis.seeds, len(y)), replace=False))
            own_index = np.sort(rng.choice(members, min(aegis.class_images, len(members)), replace=False))
            features, reached = aegis.class_features(model, x[own_index], x[seed_index], target)
            labels = cluster_labels(embed(features, perplexity=aegis.perplexity, seed=draw), bandwidth=args.bandwidth)
            print(f"class {target}, draw {draw}: {len(set(labels.tolist()))} clusters, translations reaching it {reached:.3f}")
            print("\n".join(describe(labels, len(own_index), y[seed_index])))


if __name__ == "__main__":
    main()
