"""Does AEGIS's translation toward a backdoor's target go through the trigger, and do the translations split into
clusters? Prints, for a backdoored and a clean cached model of a run directory, the share of patched images sent
to the target, and for several translation step counts: the share of seeds that reach the target, the mean |δ| on
the trigger's pixels against elsewhere, and the cluster counts (t-SNE + mean shift, as AEGIS counts them) of the
class's training images with the translations, and with the translations and patched images.

    python benchmarks/aegis_translation_probe.py RUN_DIR/models/BACKDOORED.pt RUN_DIR/models/CLEAN.pt \
        --dataset gtsrb:every=2,classes=10 --model narrow-cnn --target 0

(docs/findings.md, "aegis", has its output for leaderboard/gtsrb10-cpu-aegis/.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchbd.data.images import default_data_root
from benchbd.harness.config import load_dataset
from benchbd.registry import default_registry
from benchbd_builtins.attacks.patch import PatchAttack
from benchbd_builtins.defenses.aegis import count_clusters, translate_toward


def features(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.features(x).double().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backdoored")
    parser.add_argument("clean")
    parser.add_argument("--dataset", default="gtsrb:every=2,classes=10")
    parser.add_argument("--model", default="narrow-cnn")
    parser.add_argument("--target", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=500)
    args = parser.parse_args()
    registry = default_registry()
    data = load_dataset(registry, args.dataset, default_data_root())
    rng = np.random.default_rng(0)
    x = torch.from_numpy(data.x_train).permute(0, 3, 1, 2).float() / 255
    y = np.asarray(data.y_train)
    seeds = x[np.sort(rng.choice(len(y), args.seeds, replace=False))]
    own = x[np.sort(rng.choice(np.flatnonzero(y == args.target), args.seeds, replace=False))]
    patch = PatchAttack(target=args.target)
    patched = patch.trigger(x[np.sort(rng.choice(np.flatnonzero(y != args.target), args.seeds, replace=False))])
    region = (patch.trigger(torch.zeros_like(x[:1])) != 0).any(1)[0]
    for path, label in ((args.backdoored, "backdoored"), (args.clean, "clean")):
        model = registry.get("models", args.model).build(data.num_classes)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.eval()
        with torch.no_grad():
            asr = float((model(patched).argmax(1) == args.target).float().mean())
        f_own, f_patched = features(model, own), features(model, patched)
        print(f"{label}: patched images sent to the target {asr:.3f}; clusters of own + patched "
              f"{count_clusters(np.concatenate([f_own, f_patched]))}")
        for steps in (60, 10, 3, 1):
            start = time.perf_counter()
            moved = translate_toward(model, seeds, args.target, eps=500.0, step_size=1.0, steps=steps, norm="l2")
            delta = (moved - seeds).abs().mean(1)
            with torch.no_grad():
                reached = float((model(moved).argmax(1) == args.target).float().mean())
            f_moved = features(model, moved)
            print(f"  {steps} steps: reached {reached:.3f}, |delta| on the trigger {float(delta[:, region].mean()):.3f} "
                  f"elsewhere {float(delta[:, ~region].mean()):.3f}; clusters own + translated "
                  f"{count_clusters(np.concatenate([f_own, f_moved]))}, with patched "
                  f"{count_clusters(np.concatenate([f_own, f_moved, f_patched]))} ({time.perf_counter() - start:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
