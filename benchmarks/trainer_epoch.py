"""Seconds per training epoch of benchbd's trainer, on GTSRB-shaped data (39,209 images, 32×32, 43 classes).

    python benchmarks/trainer_epoch.py [--device auto] [--model small-cnn] [--quick] [--data PATH.npz] [--precision P]

Random images by default (speed does not depend on content); ``--data`` times a real prepared file instead.
``--quick`` uses 4,096 images so that a CPU run takes a minute or two. On a CPU, ``ONEDNN_MAX_CPU_ISA`` (oneDNN's
instruction-set cap: ``AVX512_CORE_AMX``, ``AVX512_CORE_BF16``, ``AVX512_CORE``, ``AVX2``) times the same machine
as one without AMX or without bf16 arithmetic, e.g. what ``--precision bf16`` costs there.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from benchbd.data.images import load_npz
from benchbd.registry import default_registry
from benchbd.training.profiles import PRECISIONS, PROFILES, TrainingProfile, with_options
from benchbd.training.trainer import Trainer, resolve_device


def epoch_seconds(device: torch.device, model: str, profile: TrainingProfile, x: np.ndarray, y: np.ndarray, epochs: int) -> list[float]:
    """Wall seconds of each of ``epochs`` one-epoch trainings of a fresh ``model`` (43 classes) on ``x``, ``y``,
    after one warm-up epoch (allocations, cuDNN autotuning)."""
    build = default_registry().model(model).build
    profile = replace(profile, epochs=1)
    trainer = Trainer(profile, device, seed=0)
    trainer.fit(build(43), x, y)
    times = []
    for _ in range(epochs):
        fresh = build(43)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        trainer.fit(fresh, x, y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return times


def random_images(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random GTSRB-shaped images and labels (a training epoch's speed does not depend on content)."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 43, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="small-cnn")
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs, after one warm-up epoch")
    parser.add_argument("--quick", action="store_true", help="4,096 images instead of 39,209")
    parser.add_argument("--data", help="a prepared .npz to time instead of random images")
    parser.add_argument("--precision", choices=PRECISIONS, default=None, help="instead of the profile's (auto: bf16 on CUDA only)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if args.data:
        arrays = load_npz(args.data)
        x, y = arrays["x_train"], arrays["y_train"]
    else:
        x, y = random_images(4096 if args.quick else 39209)
    if args.quick:
        x, y = x[:4096], y[:4096]
    profile = with_options(PROFILES[args.profile], precision=args.precision)
    times = epoch_seconds(device, args.model, profile, x, y, args.epochs)
    best, median = min(times), float(np.median(times))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; model {args.model}; profile {profile.name}; batch {profile.batch_size}; {len(y)} images")
    print(f"seconds per epoch: median {median:.3f}, best {best:.3f} over {args.epochs} epochs")
    print(f"images/s: {len(y) / median:,.0f}")


if __name__ == "__main__":
    main()
