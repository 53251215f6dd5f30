"""Per-batch cost of the blind code-poisoning attack against clean training (Bagdasaryan & Shmatikov 2021,
appendix A: 2-3x the time with MGDA, 1.5x without; memory grows with every extra forward pass).

    python benchmarks/blind_overhead.py [--device auto] [--model small-cnn] [--batch-size 128] [--quick]

Each configuration trains its own model with the fast profile's optimiser on random 32×32 images (cost does
not depend on content); their steps are interleaved, one batch of each in turn, so that a shared, noisy
machine slows them alike. A step is what the trainer does per batch: loss computation, backward, optimiser
step. Reported per configuration: the median seconds per step and its ratio to clean training; graph memory,
the bytes autograd holds for backward (every device; the attack's own measurement, see
``BlindAttack.stats``), plus MGDA's per-task gradient copies; on CUDA also the peak allocated memory per step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import torch

from benchbd.registry import default_registry
from benchbd.training.profiles import PROFILES
from benchbd.training.trainer import LossComputation, StepInfo, cross_entropy_loss, resolve_device
from benchbd_builtins.attacks.blind import MB, BlindAttack, GraphMemory

CLASSES = 43
CONFIGURATIONS: dict[str, dict[str, object] | None] = {
    "clean": None,
    "blind, fixed scales": {"balance": "fixed"},
    "blind, MGDA": {"balance": "mgda"},
    "blind, MGDA every 10 batches": {"balance": "mgda", "mgda_every": 10},
    "blind, MGDA + Neural Cleanse evasion": {"balance": "mgda", "evade_neural_cleanse": True},
}


class Run:
    """One configuration: a model, its optimiser, its loss computation and what its steps cost."""

    def __init__(self, build: Callable[[int], torch.nn.Module], device: torch.device, params: dict[str, object] | None) -> None:
        torch.manual_seed(0)
        self.model = build(CLASSES).to(device, memory_format=torch.channels_last).train()
        # The fast profile's optimiser at a tenth of its rate, so that random labels cannot make the loss diverge.
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=PROFILES["fast"].lr / 10, momentum=0.9, nesterov=True)
        self.attack: BlindAttack | None = None
        self.loss: LossComputation = cross_entropy_loss
        if params is not None:
            self.attack = BlindAttack(target=0, **params)
            self.attack.prepare(np.zeros((1, 32, 32, 3), np.uint8), np.zeros(1), CLASSES, np.random.default_rng(0))
            self.loss = self.attack.loss_computation(cross_entropy_loss)
        self.seconds: list[float] = []
        self.cuda_peaks: list[int] = []
        self.clean_graph_bytes: list[int] = []

    def step(self, x: torch.Tensor, y: torch.Tensor, step: StepInfo, measured: bool) -> None:
        device = x.device
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        memory = GraphMemory()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if self.attack is None:
                with memory.recording():
                    loss = self.loss(self.model, x, y, step)
            else:
                loss = self.loss(self.model, x, y, step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if measured:
            self.seconds.append(time.perf_counter() - started)
            self.clean_graph_bytes.append(memory.bytes)
            if device.type == "cuda":
                self.cuda_peaks.append(torch.cuda.max_memory_allocated(device))

    def graph_mb(self) -> float:
        if self.attack is None:
            return statistics.fmean(self.clean_graph_bytes) / MB
        stats = self.attack.stats()
        return stats["graph_memory_mb"]["attacked"] + stats["task_gradients_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="small-cnn")
    parser.add_argument("--batch-size", type=int, default=PROFILES["fast"].batch_size)
    parser.add_argument("--batches", type=int, default=30, help="timed batches per configuration, after 3 warm-up ones")
    parser.add_argument("--quick", action="store_true", help="8 timed batches (a CPU run takes a minute or two)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    build = default_registry().model(args.model).build
    runs = {name: Run(build, device, params) for name, params in CONFIGURATIONS.items()}
    timed = 8 if args.quick else args.batches
    warmup = 3
    generator = torch.Generator().manual_seed(0)
    for b in range(warmup + timed):
        x = torch.rand(args.batch_size, 3, 32, 32, generator=generator).to(device).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, CLASSES, (args.batch_size,), generator=generator).to(device)
        step = StepInfo(epoch=0, epochs=1, batch=b, batches=warmup + timed)
        for run in runs.values():
            run.step(x, y, step, measured=b >= warmup)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"device: {name}; model {args.model}; batch {args.batch_size}; median of {timed} steps after {warmup} warm-up")
    clean = runs["clean"]
    clean_seconds, clean_graph = statistics.median(clean.seconds), clean.graph_mb()
    header = f"{'configuration':<38} {'s/batch':>8} {'x clean':>8} {'graph MB':>9} {'x clean':>8}"
    if device.type == "cuda":
        header += f" {'peak MB':>8} {'x clean':>8}"
    print(header)
    for label, run in runs.items():
        seconds, graph = statistics.median(run.seconds), run.graph_mb()
        line = f"{label:<38} {seconds:>8.3f} {seconds / clean_seconds:>8.2f} {graph:>9.1f} {graph / clean_graph:>8.2f}"
        if device.type == "cuda":
            peak, clean_peak = statistics.median(run.cuda_peaks) / MB, statistics.median(clean.cuda_peaks) / MB
            line += f" {peak:>8.1f} {peak / clean_peak:>8.2f}"
        print(line)


if __name__ == "__main__":
    main()
