"""K trainings of one model on one training set: one after another (``Trainer.fit``) against stacked as one model
(``benchbd.training.stacked.fit_stacked``), as the model unit's clean population trains them (issue 21 item 1).

    python benchmarks/stacked_training.py [--device auto] [--model small-cnn] [--profile fast] [--models 4] [--quick]

Random GTSRB-shaped images (speed does not depend on content): 39,209, or 4,096 with ``--quick``; one epoch each
way after a warm-up of both on 1,024 images. Prints the seconds of each way, images/s (every model's images counted) and
the stacked gain; ``--json`` prints the same as one JSON object (gpu_check.py reads it).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from typing import Any, Callable

import torch

from benchbd.registry import default_registry
from benchbd.training.profiles import PROFILES
from benchbd.training.stacked import fit_stacked
from benchbd.training.trainer import Trainer, resolve_device
from trainer_epoch import random_images

WARM_UP_IMAGES = 1024


def timed(device: torch.device, run: Callable[[], None]) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def measure(device: torch.device, model: str, profile_name: str, models: int, images: int) -> dict[str, Any]:
    x, y = random_images(images)
    build = default_registry().model(model).build
    profile = replace(PROFILES[profile_name], epochs=1)
    trainers = [Trainer(profile, device, seed) for seed in range(models)]

    def one_after_another(n: int = images) -> None:
        for trainer in trainers:
            trainer.fit(build(43), x[:n], y[:n])

    def stacked(n: int = images) -> None:
        fit_stacked(trainers, [build(43) for _ in trainers], x[:n], y[:n])

    one_after_another(WARM_UP_IMAGES), stacked(WARM_UP_IMAGES)  # allocations, cuDNN autotuning
    sequential_s, stacked_s = timed(device, one_after_another), timed(device, stacked)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return {
        "device": name, "model": model, "profile": profile_name, "models": models, "images": images,
        "sequential_s": sequential_s, "stacked_s": stacked_s,
        "sequential_images_per_s": models * images / sequential_s, "stacked_images_per_s": models * images / stacked_s,
        "gain": sequential_s / stacked_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="small-cnn")
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--models", type=int, default=4, help="K, the trainings (the matrix's default --clean-models is 4)")
    parser.add_argument("--quick", action="store_true", help="4,096 images instead of 39,209")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = parser.parse_args()
    result = measure(resolve_device(args.device), args.model, args.profile, args.models, 4096 if args.quick else 39209)
    if args.json:
        print(json.dumps(result))
        return
    print(f"device: {result['device']}; model {args.model}; profile {args.profile}; {args.models} models; "
          f"{result['images']:,} images, one epoch each")
    print(f"one after another: {result['sequential_s']:.2f} s ({result['sequential_images_per_s']:,.0f} images/s)")
    print(f"stacked:           {result['stacked_s']:.2f} s ({result['stacked_images_per_s']:,.0f} images/s)")
    print(f"gain: {result['gain']:.2f}x")


if __name__ == "__main__":
    main()
