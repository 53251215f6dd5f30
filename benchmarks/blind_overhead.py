"""Per-step cost of the blind code-poisoning attack against clean training (Bagdasaryan & Shmatikov 2021,
appendix A: 2-3x the time with MGDA, 1.5x without; memory grows with every extra forward pass).

    python benchmarks/blind_overhead.py [--device auto] [--model small-cnn] [--batch-size 64] [--quick]

Each configuration is a :class:`~benchbd.training.trainer.TrainingRun` of its own model, the fast profile at a
tenth of its learning rate (so that random labels cannot make the loss diverge), on random 32×32 images (cost
does not depend on content). The runs advance one step each in turn, so that a shared, noisy machine slows them
alike. A :class:`StepProfiler` watches every step: loss computation, backward, optimiser step. Reported per
configuration, medians over the steps after the warm-up ones and their ratios to clean training:

- seconds per step;
- graph memory: the peak bytes of the tensors autograd holds for backward, on any device. Ours: parameters are
  left out (the model holds them anyway), and so are MGDA's per-task gradient copies (one parameter-sized copy per
  task while it solves), which are not saved tensors;
- on CUDA, the peak memory the step allocates beyond what was allocated when it began (every run's model,
  optimiser state and data stay resident, so the device's total peak would hide the step's own).
"""

from __future__ import annotations

import argparse
import statistics
import time
import weakref
from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator

import numpy as np
import torch

from benchbd.registry import default_registry
from benchbd.training.profiles import PROFILES
from benchbd.training.trainer import StepInfo, Trainer, TrainingRun, cross_entropy_loss, resolve_device
from benchbd_builtins.attacks.blind import BlindAttack

CLASSES = 43
WARMUP = 3
MB = 2**20
CONFIGURATIONS: dict[str, dict[str, object] | None] = {
    "clean": None,
    "blind, fixed scales": {"balance": "fixed"},
    "blind, MGDA": {"balance": "mgda"},
    "blind, MGDA every 10 batches": {"balance": "mgda", "mgda_every": 10},
    "blind, MGDA + Neural Cleanse evasion": {"balance": "mgda", "evade_neural_cleanse": True},
}


class SavedTensorMeter:
    """Live and peak bytes of the storages autograd saves for backward: each counted once when first saved and
    subtracted when freed, so a graph freed within the step (Neural Cleanse's search) stops counting."""

    def __init__(self) -> None:
        self.live: dict[int, int] = {}
        self.bytes = 0
        self.peak = 0

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.is_leaf and tensor.requires_grad:  # a parameter (or the evasion mask): held anyway
            return tensor
        storage = tensor.untyped_storage()
        key = id(storage)
        if key not in self.live:
            self.live[key] = storage.nbytes()
            self.bytes += self.live[key]
            self.peak = max(self.peak, self.bytes)
            weakref.finalize(storage, self.release, key)
        return tensor

    def release(self, key: int) -> None:
        self.bytes -= self.live.pop(key)


class StepProfiler:
    """A :class:`~benchbd.training.trainer.StepObserver` that measures each step's seconds and memory.

    The device is synchronised at both ends of the step, since CUDA work is asynchronous. The memory hook costs a
    few microseconds per saved tensor, inside the timed interval.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: list[float] = []
        self.graph_bytes: list[int] = []
        self.cuda_peak_bytes: list[int] = []

    @contextmanager
    def step(self, info: StepInfo) -> Iterator[None]:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            allocated = torch.cuda.memory_allocated(self.device)
        meter = SavedTensorMeter()
        started = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(meter.pack, lambda tensor: tensor):
            yield
        if cuda:
            torch.cuda.synchronize(self.device)
        self.seconds.append(time.perf_counter() - started)
        self.graph_bytes.append(meter.peak)
        if cuda:
            self.cuda_peak_bytes.append(torch.cuda.max_memory_allocated(self.device) - allocated)

    def medians(self) -> dict[str, float]:
        """Seconds and MB per step, the warm-up steps left out."""
        figures = {"seconds": statistics.median(self.seconds[WARMUP:])}
        figures["graph MB"] = statistics.median(self.graph_bytes[WARMUP:]) / MB
        if self.cuda_peak_bytes:
            figures["peak MB"] = statistics.median(self.cuda_peak_bytes[WARMUP:]) / MB
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="small-cnn")
    parser.add_argument("--batch-size", type=int, default=PROFILES["fast"].batch_size)
    parser.add_argument("--batches", type=int, default=30, help=f"timed steps per configuration, after {WARMUP} warm-up")
    parser.add_argument("--quick", action="store_true", help="8 timed batches (a CPU run takes about a minute)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    build = default_registry().model(args.model).build
    steps = WARMUP + (8 if args.quick else args.batches)
    fast = PROFILES["fast"]
    trainer = Trainer(replace(fast, lr=fast.lr / 10, batch_size=args.batch_size), device, seed=0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (steps * args.batch_size, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, CLASSES, len(x))

    profilers: dict[str, StepProfiler] = {}
    runs: list[TrainingRun] = []
    for label, params in CONFIGURATIONS.items():
        loss = cross_entropy_loss
        if params is not None:
            attack = BlindAttack(target=0, **params)
            attack.prepare(x, y, CLASSES, np.random.default_rng(0))
            loss = attack.loss_computation(cross_entropy_loss)
        torch.manual_seed(0)
        profiler = profilers[label] = StepProfiler(device)
        runs.append(TrainingRun(trainer, build(CLASSES), x, y, loss_computation=loss, epochs=1, observer=profiler))
    for _ in range(steps):
        for run in runs:
            run.advance(1)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    timed = steps - WARMUP
    print(f"device: {name}; model {args.model}; batch {args.batch_size}; medians of {timed} steps after {WARMUP} warm-up ones")
    clean = profilers["clean"].medians()
    print(f"{'configuration':<38}" + "".join(f" {column:>9} {'x clean':>8}" for column in clean))
    for label, profiler in profilers.items():
        figures = profiler.medians()
        print(f"{label:<38}" + "".join(f" {value:>9.3f} {value / clean[key]:>8.2f}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
