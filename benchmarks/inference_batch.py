"""Images a second of the trainer's batched inference (``Trainer.logits``) by the number of images per pass.

    python benchmarks/inference_batch.py [--device auto] [--models narrow-cnn,small-cnn] [--batches 128,256,512,1024,2048]

Random GTSRB-shaped images (8,192 by default; speed does not depend on content), untrained models of 43 classes,
the fast profile's precision (float32 on a CPU, bf16 on CUDA); each figure is the best of ``--repeats`` timed
passes over all images, after one warm-up pass. The trainer's pass size is ``Trainer.inference_batch`` (256 on a
CPU, 1,024 elsewhere), which this script sets for each column.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchbd.registry import default_registry
from benchbd.training.profiles import PROFILES
from benchbd.training.trainer import Trainer, resolve_device


def images_per_second(trainer: Trainer, model: torch.nn.Module, x: np.ndarray, batch: int, repeats: int) -> float:
    trainer.inference_batch = batch
    trainer.logits(model, x[:batch])
    best = float("inf")
    for _ in range(repeats):
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        trainer.logits(model, x)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return len(x) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", default="narrow-cnn,small-cnn")
    parser.add_argument("--batches", default="128,256,512,1024,2048")
    parser.add_argument("--images", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = resolve_device(args.device)
    trainer = Trainer(PROFILES["fast"], device, seed=0)
    x = np.random.default_rng(0).integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.images} images, "
          f"best of {args.repeats}; images a second by images per pass")
    batches = [int(b) for b in args.batches.split(",")]
    print("| model | " + " | ".join(str(b) for b in batches) + " |")
    print("|---" * (len(batches) + 1) + "|")
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = trainer.place(default_registry().model(name).build(43))
        rates = [images_per_second(trainer, model, x, b, args.repeats) for b in batches]
        print(f"| {name} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |")


if __name__ == "__main__":
    main()
