"""How much does AEGIS's robustness check move between draws? For cached models, the adversarial accuracy over the
whole test split under PGD with AEGIS's robust-training budget (L∞ 8/255, 7 steps of 2/255, random start),
once per random start (``--starts``); how many images change verdict between the first two starts; and the spread
of the accuracy over ``--draws`` random draws of ``--images`` test images from the first start's per-image
verdicts (``AEGIS.robust_verdicts``: what the check, ``AEGIS.adversarial_accuracy`` on ``robustness_images``
held-out images, sees), beside the binomial standard deviation; and the per-class accuracy.

    python benchmarks/aegis_robustness_spread.py RUN_DIR/models/KEY.pt [...] --model narrow-cnn \\
        --dataset gtsrb:every=2,classes=10

Models with clean test accuracy above ``--standard-above`` (0.985) are taken for standard ones and skipped.
(docs/findings.md, "aegis", has its output for leaderboard/gtsrb10-cpu-aegis-triggers/.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchbd.data.images import default_data_root
from benchbd.harness.config import load_dataset
from benchbd.registry import default_registry
from benchbd_builtins.defenses.aegis import AEGIS

BATCH = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_paths", nargs="+", help="cached models, RUN_DIR/models/KEY.pt")
    parser.add_argument("--dataset", default="gtsrb:every=2,classes=10")
    parser.add_argument("--model", default="narrow-cnn")
    parser.add_argument("--starts", type=int, default=2, help="PGD random starts over the whole test split (default 2)")
    parser.add_argument("--images", type=int, default=AEGIS.robustness_images, help="images a draw holds (default AEGIS's 500)")
    parser.add_argument("--draws", type=int, default=2000, help="draws of --images test images (default 2000)")
    parser.add_argument("--standard-above", type=float, default=0.985, help="skip models above this clean accuracy")
    args = parser.parse_args()
    registry = default_registry()
    data = load_dataset(registry, args.dataset, default_data_root())
    x = torch.from_numpy(data.x_test).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(np.asarray(data.y_test)).long()
    for path in args.model_paths:
        model = registry.get("models", args.model).build(data.num_classes)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.eval()
        with torch.no_grad():
            clean = float((torch.cat([model(x[i : i + BATCH]).argmax(1) for i in range(0, len(x), BATCH)]) == y).float().mean())
        if clean > args.standard_above:
            print(f"{path}: clean accuracy {clean:.4f}, a standard model: skipped", flush=True)
            continue
        starts = []
        for seed in range(args.starts):
            began = time.perf_counter()
            starts.append(AEGIS().robust_verdicts(model, x, y, seed))
            print(f"{path}: start {seed}: adversarial accuracy {starts[-1].mean():.4f} on all {len(y)} test images "
                  f"({time.perf_counter() - began:.0f} s)", flush=True)
        first = starts[0]
        rng = np.random.default_rng(0)
        draws = np.array([first[rng.choice(len(first), args.images, replace=False)].mean() for _ in range(args.draws)])
        p = first.mean()
        changed = f"{(starts[0] != starts[1]).mean():.4f}" if len(starts) > 1 else "-"
        per_class = {c: round(float(first[np.asarray(data.y_test) == c].mean()), 3) for c in range(data.num_classes)}
        print(f"  clean accuracy {clean:.4f}; images whose verdict changes between starts 0 and 1: {changed}; "
              f"draws of {args.images}: sd {draws.std():.4f} (binomial {np.sqrt(p * (1 - p) / args.images):.4f}), "
              f"central 95% {np.percentile(draws, 2.5):.3f}-{np.percentile(draws, 97.5):.3f}; per class {per_class}", flush=True)


if __name__ == "__main__":
    main()
