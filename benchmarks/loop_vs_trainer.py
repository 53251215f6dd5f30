"""benchbd's trainer against the loop other suites use, on one device, same model and data.

    python benchmarks/loop_vs_trainer.py [--device auto] [--model preact-resnet18] [--quick] [--data PATH.npz] \
        [--precision auto|fp32|bf16]

The baseline is a BackdoorBench-style epoch: a torch DataLoader over uint8 images with per-sample torchvision
transforms (ToTensor, ±2 px random crop, Normalize), fp32, batch 128. benchbd's trainer keeps the data on the
device, augments in one batched op, uses channels_last and the precision of ``--precision`` (default ``auto``: bf16
autocast on CUDA, fp32 on a CPU; ``bf16`` on a CPU with AMX is the trainer's fastest CPU setting), with the
profile's batch size.
Prints seconds per epoch and images/s of both, and the fraction of the device's bf16 matmul ceiling that
benchbd's epoch reaches (CUDA only); the last line is the speed-up ratio.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms

from benchbd.data.images import load_npz
from benchbd.models import INPUT_MEAN, INPUT_STD
from benchbd.registry import default_registry
from benchbd.training.profiles import PRECISIONS, PROFILES
from benchbd.training.trainer import Trainer, resolve_device
from trainer_epoch import random_images


class PerSampleImages(Dataset):
    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y
        self.transform = transforms.Compose([
            transforms.ToTensor(),
            transforms.RandomCrop(32, padding=2),
            transforms.Normalize([INPUT_MEAN] * 3, [INPUT_STD] * 3),
        ])

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.x[index]), int(self.y[index])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def baseline_epoch(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, device: torch.device, workers: int) -> float:
    loader = DataLoader(PerSampleImages(x, y), batch_size=128, shuffle=True, num_workers=workers, pin_memory=device.type == "cuda")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.to(device).train()
    synchronize(device)
    started = time.perf_counter()
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        loss = F.cross_entropy(model.head(model.backbone(xb)), yb)  # inputs already normalised by the transform
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    synchronize(device)
    return time.perf_counter() - started


def training_flops(model: torch.nn.Module, device: torch.device, batch: int) -> float:
    """FLOPs of one training step (forward and backward) per image."""
    model.to(device)
    x = torch.rand(batch, 3, 32, 32, device=device)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), torch.zeros(batch, dtype=torch.long, device=device)).backward()
    return counter.get_total_flops() / batch


def bf16_ceiling(device: torch.device) -> float:
    """Measured bf16 matmul throughput in FLOP/s."""
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    synchronize(device)
    started = time.perf_counter()
    for _ in range(20):
        a @ a
    synchronize(device)
    return 20 * 2 * 8192**3 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="preact-resnet18")
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--quick", action="store_true", help="2,048 images and small-cnn: a minute or two on CPU")
    parser.add_argument("--data", help="a prepared .npz (default: random GTSRB-shaped images)")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers of the baseline")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="the trainer's precision (the baseline stays fp32)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    model_name = "small-cnn" if args.quick else args.model
    if args.data:
        arrays = load_npz(args.data)
        x, y = arrays["x_train"], arrays["y_train"]
    else:
        x, y = random_images(39209)
    if args.quick:
        x, y = x[:2048], y[:2048]
    build = default_registry().model(model_name).build

    baseline_epoch(build(43), x[:1024], y[:1024], device, args.workers)  # warm-up
    baseline = min(baseline_epoch(build(43), x, y, device, args.workers) for _ in range(2))

    trainer = Trainer(replace(PROFILES[args.profile], epochs=1, precision=args.precision), device, seed=0)
    trainer.fit(build(43), x[:1024], y[:1024])  # warm-up
    times = []
    for _ in range(3):
        synchronize(device)
        started = time.perf_counter()
        trainer.fit(build(43), x, y)
        synchronize(device)
        times.append(time.perf_counter() - started)
    ours = min(times)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device {name}; model {model_name}; {len(y)} images")
    print(f"baseline loop (DataLoader, per-sample transforms, fp32, batch 128): {baseline:.3f} s/epoch, {len(y) / baseline:,.0f} images/s")
    print(f"benchbd trainer (profile {args.profile}, batch {trainer.profile.batch_size}, {'bf16 autocast' if trainer.use_bf16 else 'fp32'}): "
          f"{ours:.3f} s/epoch, {len(y) / ours:,.0f} images/s")
    if device.type == "cuda":
        achieved = training_flops(build(43), device, 64) * len(y) / ours
        print(f"arithmetic: {achieved / 1e12:.1f} TFLOP/s, {100 * achieved / bf16_ceiling(device):.1f}% of the measured bf16 matmul ceiling")
    print(f"speed-up of benchbd's trainer over the baseline loop: {baseline / ours:.2f}x")


if __name__ == "__main__":
    main()
