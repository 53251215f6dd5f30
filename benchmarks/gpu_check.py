"""The prepared check of a first GPU session (issue 21 item 3): the trainer's speed, its time to clean accuracy, and
the wall time of the GTSRB matrix, in at most 8 minutes on one H200.

    python benchmarks/gpu_check.py --out $OUT/gpu_check.json                  # the GPU session: 7.5 minutes at most
    python benchmarks/gpu_check.py --quick --device cpu --out /tmp/quick.json  # tiny sizes: about a minute on 2 cores

Targets (issue 21): a preact-resnet18 epoch over GTSRB in ≤ 0.25 s; the fast profile at ≥ 98% clean accuracy in
≤ 2 s; the GTSRB matrix in ≤ 10 minutes; and the gain of stacked training (issue 21 item 1), which decides where
the matrix stacks (``Workbench.stacks_populations``).

Each section runs in a child process under its own time budget (``--loop-budget``, ``--accuracy-budget``,
``--stacked-budget``, ``--matrix-budget``: 90 + 60 + 30 + 270 s by default, the GPU's; give the whole command 480 s;
200 s each with ``--quick``, room for a loaded CPU). A
section that overruns is killed and keeps the figures it had finished; one that fails is recorded with its error;
either way the next section starts. It needs benchbd installed (the built-in plugins register through entry points) and, for sections 2 and 4,
the prepared ``DATA_ROOT/gtsrb.npz``.

1. ``loop``: the BackdoorBench-style loop of ``benchmarks/loop_vs_trainer.py`` (DataLoader, per-sample transforms,
   fp32, batch 128) against one epoch of benchbd's trainer (``--profile``, the data already on the device), for
   preact-resnet18 and small-cnn on 39,209 random GTSRB-shaped images: seconds per epoch (best of 3 for the
   trainer, of 2 for the loop, each after a warm-up), images/s, the speed-up ratio, and the fraction of the bf16
   matmul ceiling (``loop_vs_trainer.bf16_ceiling``, measured on CUDA only) that the trainer's arithmetic reaches.
   The arithmetic is ``loop_vs_trainer.training_flops``: a forward and backward pass as FlopCounterMode counts it,
   about three times the forward pass's FLOPs.
2. ``accuracy``: the profile trained on all of GTSRB (the prepared cache ``DATA_ROOT/gtsrb.npz``), test accuracy
   after every epoch: the training time, evaluations left out, until it first reaches ``--accuracy-target`` (after
   a warm-up epoch on 1,024 images, the data already on the device).
   Skipped, with the reason, without the cache (nothing is downloaded).
3. ``stacked``: ``benchmarks/stacked_training.py``'s measurement for the profile's model (the one whose clean
   population the matrix would stack): 4 trainings of one epoch over section 1's images, one after another and
   stacked as one model, seconds of each and the gain.
4. ``matrix``: ``benchbd matrix`` (``python -m benchbd.cli``) on GTSRB, six attacks × seven defenses, both modes,
   one seed, in a fresh run directory: the wall time, the cells finished of all, and each phase's share of the wall
   time (poisoned-model training: each group's ``train_seconds``; each defense: its cells' ``seconds``; the rest:
   start-up, data, evaluations, the leaderboard, and after a timeout the unfinished cell). Skipped like section 2
   without the cache.

``--out`` is rewritten every few seconds while a section runs and after each one, so a run stopped from outside
keeps what had finished. Beside it: each section's log (``NAME.SECTION.log``) and the matrix's records
(``NAME.matrix.jsonl``). Every measured figure is ``{"value": ..., "unit": ...}``; the environment (device, torch
version, benchbd's git commit) is benchbd's own record of it (``benchbd.harness.environment``).

``--quick`` runs the same code on tiny sizes: the cpu profile (narrow-cnn, no augmentation) throughout, 512 images
in sections 1 and 3, a generated synth-signs file of 430 training and 215 test images (``npz:PATH``) in sections 2 and 4,
an accuracy target of 4% (chance: 2.3%), and the matrix cut to two attacks and two defenses.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from benchbd.data.images import default_data_root
from benchbd.data.synth_signs import generate_synth_signs
from benchbd.errors import BenchbdError
from benchbd.harness.config import load_dataset
from benchbd.harness.environment import environment
from benchbd.harness.results import INVOCATIONS, RESULTS, read_records, write_json_atomic
from benchbd.models import ImageClassifier
from benchbd.registry import default_registry
from benchbd.training.profiles import get_profile
from benchbd.training.trainer import EpochEnd, Trainer, resolve_device
from loop_vs_trainer import baseline_epoch, bf16_ceiling, synchronize, training_flops
from stacked_training import measure as measure_stacked_training
from trainer_epoch import random_images

GTSRB_TRAIN_IMAGES = 39209
GTSRB_CLASSES = 43
WARM_UP_IMAGES = 1024
MATRIX_ATTACKS = "patch,single-pixel,blend-random,blend-dimple,sinusoid,wanet"
MATRIX_DEFENSES = "none,badloss,neural-cleanse,activation-clustering,spectral,frequency,abl"
POLL_SECONDS = 5.0
STACKED_MODELS = 4

#: The sizes of a full run and of ``--quick``; the options of the same names override them.
FULL = {"profile": "fast", "images": GTSRB_TRAIN_IMAGES, "models": "preact-resnet18,small-cnn", "workers": 4,
        "accuracy_target": 0.98, "attacks": MATRIX_ATTACKS, "defenses": MATRIX_DEFENSES,
        "loop_budget": 90.0, "accuracy_budget": 60.0, "stacked_budget": 30.0, "matrix_budget": 270.0}
QUICK = {"profile": "cpu", "images": 512, "models": "narrow-cnn", "workers": 1, "accuracy_target": 0.04,
         "attacks": "patch,blend-random", "defenses": "none,spectral",
         "loop_budget": 200.0, "accuracy_budget": 200.0, "stacked_budget": 200.0, "matrix_budget": 200.0}
SECTIONS = ("loop", "accuracy", "stacked", "matrix")
OPTIONS = ("profile", "models", "workers", "accuracy_target", *(f"{name}_budget" for name in SECTIONS))

Record = Callable[..., None]


def figure(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit}


@dataclass(frozen=True)
class Settings:
    """What the sections run with, resolved from the options (``--quick`` or not); written into ``--out``."""

    device: str
    data_root: str
    profile: str
    images: int
    models: list[str]
    workers: int
    accuracy_dataset: str
    accuracy_target: float
    matrix_dataset: str
    attacks: str
    defenses: str
    budgets: dict[str, float]

    @classmethod
    def read(cls, path: Path) -> Settings:
        return cls(**json.loads(path.read_text()))


# -- section 1: the BackdoorBench-style loop against benchbd's trainer ---------------------------------------------
def trainer_epoch(build: Callable[[int], ImageClassifier], x: np.ndarray, y: np.ndarray, device: torch.device, profile: str) -> float:
    """Seconds of one epoch of ``profile``, best of three fits of fresh models after a warm-up fit; the data is
    placed on the device first and the models are built outside the timing."""
    trainer = Trainer(replace(get_profile(profile), epochs=1), device, seed=0)
    x_dev, y_dev = trainer.images(x), trainer.labels(y)
    trainer.fit(build(GTSRB_CLASSES), x_dev[:WARM_UP_IMAGES], y_dev[:WARM_UP_IMAGES])
    times = []
    for _ in range(3):
        model = build(GTSRB_CLASSES)
        synchronize(device)
        started = time.perf_counter()
        trainer.fit(model, x_dev, y_dev)
        synchronize(device)
        times.append(time.perf_counter() - started)
    return min(times)


def epoch_figures(seconds: float, images: int) -> dict[str, Any]:
    return {"epoch": figure(seconds, "s/epoch"), "throughput": figure(images / seconds, "images/s")}


def compare_loops(
    name: str, x: np.ndarray, y: np.ndarray, device: torch.device, settings: Settings, ceiling: float | None, save: Callable[[dict[str, Any]], None]
) -> None:
    """The trainer first (the target's figure), then its arithmetic, then the baseline loop; ``save`` after each."""
    build = default_registry().model(name).build
    ours = trainer_epoch(build, x, y, device, settings.profile)
    save({"trainer": {**epoch_figures(ours, len(y)), "batch_size": get_profile(settings.profile).batch_size}})
    flops = training_flops(build(GTSRB_CLASSES), device, 64)
    achieved = flops * len(y) / ours
    save({
        "training_flops": figure(flops, "FLOP/image (forward and backward)"),
        "achieved": figure(achieved / 1e12, "TFLOP/s"),
        "ceiling_fraction": figure(achieved / ceiling, "fraction of the bf16 matmul ceiling") if ceiling else None,
    })
    baseline_epoch(build(GTSRB_CLASSES), x[:WARM_UP_IMAGES], y[:WARM_UP_IMAGES], device, settings.workers)
    baseline = min(baseline_epoch(build(GTSRB_CLASSES), x, y, device, settings.workers) for _ in range(2))
    save({
        "baseline": {**epoch_figures(baseline, len(y)), "batch_size": 128, "workers": settings.workers},
        "speedup": figure(baseline / ours, "x (baseline s/epoch / trainer s/epoch)"),
    })


def measure_loops(settings: Settings, record: Record) -> None:
    device = resolve_device(settings.device)
    x, y = random_images(settings.images)
    ceiling = bf16_ceiling(device) if device.type == "cuda" else None
    record(
        images=settings.images,
        bf16_ceiling=figure(ceiling / 1e12, "TFLOP/s") if ceiling else None,
        bf16_ceiling_note="measured: 20 products of 8192×8192 bf16 matrices" if ceiling else "CUDA only (minutes on a CPU)",
        models={},
    )
    models: dict[str, dict[str, Any]] = {}
    for name in settings.models:
        entry = models.setdefault(name, {})

        def save(fields: dict[str, Any], entry: dict[str, Any] = entry) -> None:
            entry.update(fields)
            record(models=models)

        compare_loops(name, x, y, device, settings, ceiling, save)


# -- section 2: time to clean accuracy -----------------------------------------------------------------------------
class AccuracyClock:
    """Epoch callback: the test accuracy after every epoch, and the training time so far without the evaluations."""

    def __init__(self, trainer: Trainer, x_test: np.ndarray, y_test: np.ndarray, target: float, record: Record) -> None:
        self.device = trainer.device
        self.x_test, self.y_test = trainer.images(x_test), trainer.labels(y_test)
        self.target = target
        self.record = record
        self.epochs: list[dict[str, Any]] = []
        self.reached = False
        self.started = 0.0
        self.outside = 0.0

    def start(self) -> None:
        synchronize(self.device)
        self.started = time.perf_counter()

    def __call__(self, end: EpochEnd) -> None:
        synchronize(self.device)
        paused = time.perf_counter()
        training = paused - self.started - self.outside
        accuracy = float((end.trainer.predict(end.model, self.x_test) == self.y_test).float().mean())
        self.epochs.append({"epoch": end.epoch + 1, "training": figure(training, "s"), "test_accuracy": figure(accuracy, "fraction")})
        fields: dict[str, Any] = {"epochs": self.epochs}
        if accuracy >= self.target and not self.reached:
            self.reached = True
            fields.update(time_to_target=figure(training, "s of training"), epochs_to_target=end.epoch + 1)
        self.record(**fields)
        self.outside += time.perf_counter() - paused


def measure_accuracy(settings: Settings, record: Record) -> None:
    device = resolve_device(settings.device)
    data = load_dataset(default_registry(), settings.accuracy_dataset, Path(settings.data_root))
    profile = get_profile(settings.profile)
    build = default_registry().model(profile.model).build
    trainer = Trainer(profile, device, seed=0)
    record(
        dataset=settings.accuracy_dataset, profile=profile.name, model=profile.model, epochs_planned=profile.epochs,
        train_images=len(data.y_train), test_images=len(data.y_test),
        target=figure(settings.accuracy_target, "test accuracy"), time_to_target=None, epochs=[],
    )
    warm_up = Trainer(replace(profile, epochs=1), device, seed=0)
    warm_up.fit(build(data.num_classes), data.x_train[:WARM_UP_IMAGES], data.y_train[:WARM_UP_IMAGES])
    x, y = trainer.images(data.x_train), trainer.labels(data.y_train)
    clock = AccuracyClock(trainer, data.x_test, data.y_test, settings.accuracy_target, record)
    model = build(data.num_classes)
    clock.start()
    trainer.fit(model, x, y, callbacks=[clock])


# -- section 3: stacked training ------------------------------------------------------------------------------------
def measure_stacking(settings: Settings, record: Record) -> None:
    device = resolve_device(settings.device)
    name = get_profile(settings.profile).model
    result = measure_stacked_training(device, name, settings.profile, STACKED_MODELS, settings.images)
    record(trainings=STACKED_MODELS, images=settings.images, models={name: {
        "one_after_another": figure(result["sequential_s"], f"s for {STACKED_MODELS} epochs"),
        "stacked": figure(result["stacked_s"], f"s for {STACKED_MODELS} epochs"),
        "gain": figure(result["gain"], "x (one after another / stacked)"),
    }})


CHILD_SECTIONS: dict[str, Callable[[Settings, Record], None]] = {
    "loop": measure_loops, "accuracy": measure_accuracy, "stacked": measure_stacking,
}


def run_child(name: str, settings: Settings, out: Path) -> int:
    """Run one section in this process, writing its figures to ``out`` as they come; an error is written there too."""
    figures: dict[str, Any] = {}

    def record(**fields: Any) -> None:
        figures.update(fields)
        write_json_atomic(out, figures)

    try:
        CHILD_SECTIONS[name](settings, record)
    except Exception as exc:  # noqa: BLE001 - whatever broke, the parent reads what was measured and why it stopped
        traceback.print_exc()
        record(error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


# -- section 4: the matrix -----------------------------------------------------------------------------------------
def phase_seconds(records: list[dict[str, Any]], wall: float) -> dict[str, float]:
    """Poisoned-model training (each group's ``train_seconds``, once per group), each defense's cells (their
    ``seconds``: judging and any retraining), and the rest of the wall time."""
    groups = {(r["mode"], tuple(r["attacks"]), r["seed"]): r.get("train_seconds", 0.0) for r in records}
    phases = {"poisoned-model training": sum(groups.values())}
    for r in records:
        phases[f"defense {r['defense']}"] = phases.get(f"defense {r['defense']}", 0.0) + r.get("seconds", 0.0)
    phases["the rest"] = wall - sum(phases.values())
    return phases


def matrix_figures(run_dir: Path, wall: float) -> dict[str, Any]:
    records = read_records(run_dir / RESULTS)
    invocations = read_records(run_dir / INVOCATIONS)
    total = invocations[-1]["config"]["cells"] if invocations else None
    figures: dict[str, Any] = {
        "wall": figure(wall, "s"),
        "cells_finished": len(records),
        "cells_total": total,
        "cells_failed": [f"{'+'.join(r['attacks']) or 'no attack'} / {r['defense']}: {r['error']}" for r in records if r["status"] == "error"],
        "phases": {
            name: {"seconds": figure(seconds, "s"), "share": figure(seconds / wall, "fraction of the wall time")}
            for name, seconds in phase_seconds(records, wall).items()
        },
    }
    if records and total and len(records) < total:
        figures["projected_wall"] = figure(wall * total / len(records), "s (wall × cells / cells finished)")
    return figures


# -- the parent: sections as child processes under their budgets --------------------------------------------------
@dataclass(frozen=True)
class Section:
    """``read(elapsed)``: the figures so far (the child's file, the matrix's records); ``skip``: why it cannot run."""

    name: str
    budget: float
    command: list[str]
    read: Callable[[float], dict[str, Any]]
    skip: str | None = None


def child_section(name: str, budget: float, settings_file: Path, work: Path) -> Section:
    out = work / f"{name}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--section", name, "--settings", str(settings_file), "--section-out", str(out)]
    return Section(name, budget, command, lambda elapsed: json.loads(out.read_text()) if out.is_file() else {})


def matrix_section(settings: Settings, budget: float, work: Path) -> Section:
    run_dir = work / "matrix"
    command = [
        sys.executable, "-m", "benchbd.cli", "matrix", "--dataset", settings.matrix_dataset, "--attacks", settings.attacks,
        "--defenses", settings.defenses, "--mode", "both", "--seeds", "1", "--profile", settings.profile,
        "--device", settings.device, "--data-root", settings.data_root, "--out", str(run_dir),
    ]
    return Section("matrix", budget, command, lambda elapsed: {"command": command[2:], **matrix_figures(run_dir, elapsed)})


def log_tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def outcome(section: Section, log: Path, elapsed: float, exit_code: int | None, running: bool) -> dict[str, Any]:
    """The section's entry: budget, elapsed time, figures so far, and its status (running, timeout, error, ok)."""
    entry: dict[str, Any] = {"budget": figure(section.budget, "s"), "elapsed": figure(elapsed, "s"), "exit_code": exit_code, "log": log.name}
    try:
        entry.update(section.read(elapsed))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        entry["read_error"] = f"{type(exc).__name__}: {exc}"
    if running:
        entry["status"] = "running"
    elif exit_code is None:
        entry.update(status="timeout", error=f"ran past its budget of {section.budget:g} s and was stopped; the figures are those finished by then")
    elif exit_code != 0:
        entry.update(status="error", error=entry.get("error") or f"exit {exit_code}; the log ends:\n{log_tail(log)}")
    else:
        entry["status"] = "ok"
    return entry


def run_section(section: Section, log: Path, update: Callable[[dict[str, Any]], None]) -> None:
    """Run the section's command, ``update`` its entry every few seconds and at the end; kill it at its budget (its
    DataLoader workers, if any, notice and exit). It stays in this process group: whatever stops this script from
    outside stops it too."""
    started = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
    with open(log, "w") as handle:
        process = subprocess.Popen(section.command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        exit_code: int | None = None
        while True:
            update(outcome(section, log, time.perf_counter() - started, None, running=True))
            left = started + section.budget - time.perf_counter()
            try:
                exit_code = process.wait(timeout=max(0.0, min(POLL_SECONDS, left)))
                break
            except subprocess.TimeoutExpired:
                if left <= POLL_SECONDS:
                    process.kill()
                    process.wait()
                    break
    update(outcome(section, log, time.perf_counter() - started, exit_code, running=False))


def resolve_settings(args: argparse.Namespace, work: Path) -> Settings:
    """The sizes of ``--quick`` or a full run under the options given; ``--quick`` writes its tiny dataset."""
    sizes = {**(QUICK if args.quick else FULL), **{k: getattr(args, k) for k in OPTIONS if getattr(args, k) is not None}}
    dataset = "gtsrb"
    if args.quick:
        tiny = work / "tiny-signs.npz"
        np.savez(tiny, **generate_synth_signs(seed=0, n_train=430, n_test=215))
        dataset = f"npz:{tiny}"
    return Settings(
        device=args.device, data_root=str(args.data_root or default_data_root()), profile=sizes["profile"],
        images=sizes["images"], models=sizes["models"].split(","), workers=sizes["workers"],
        accuracy_dataset=dataset, accuracy_target=sizes["accuracy_target"], matrix_dataset=dataset,
        attacks=sizes["attacks"], defenses=sizes["defenses"], budgets={name: sizes[f"{name}_budget"] for name in SECTIONS},
    )


def sections(args: argparse.Namespace, settings: Settings, work: Path) -> list[Section]:
    settings_file = work / "settings.json"
    settings_file.write_text(json.dumps(asdict(settings)))
    cache = Path(settings.data_root) / "gtsrb.npz"
    missing = None if settings.matrix_dataset != "gtsrb" or cache.is_file() else (
        f"no prepared GTSRB cache at {cache} (nothing is downloaded here; `python shared/data/decode_gtsrb32.py {cache}` writes one)"
    )
    return [
        child_section("loop", settings.budgets["loop"], settings_file, work),
        replace(child_section("accuracy", settings.budgets["accuracy"], settings_file, work), skip=missing),
        child_section("stacked", settings.budgets["stacked"], settings_file, work),
        replace(matrix_section(settings, settings.budgets["matrix"], work), skip=missing),
    ]


def check(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as folder:
        work = Path(folder)
        settings = resolve_settings(args, work)
        todo = sections(args, settings, work)
        report: dict[str, Any] = {
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "quick": args.quick,
            "environment": {**environment(device), "torch": torch.__version__, "cuda": torch.version.cuda, "cpus": os.cpu_count()},
            "settings": asdict(settings),
            "sections": {s.name: {"status": "pending", "budget": figure(s.budget, "s")} for s in todo},
        }
        write_json_atomic(out, report)
        for section in todo:
            log = out.with_suffix(f".{section.name}.log")

            def update(entry: dict[str, Any], name: str = section.name) -> None:
                report["sections"][name] = entry
                write_json_atomic(out, report)

            print(f"{section.name}: {'skipped' if section.skip else f'running, budget {section.budget:g} s, log {log}'}", flush=True)
            if section.skip:
                update({"status": "skipped", "reason": section.skip, "budget": figure(section.budget, "s")})
            else:
                run_section(section, log, update)
        if (work / "matrix" / RESULTS).is_file():
            shutil.copyfile(work / "matrix" / RESULTS, out.with_suffix(".matrix.jsonl"))
    print_summary(report, out)
    return 0


# -- the summary ---------------------------------------------------------------------------------------------------
def value(entry: Any, *keys: str) -> Any:
    """``entry[k1][k2]...["value"]``, None where any is missing (a section that stopped early)."""
    for key in keys:
        entry = entry.get(key) if isinstance(entry, dict) else None
    return entry.get("value") if isinstance(entry, dict) else None


def fmt(number: float | None, spec: str) -> str:
    return "-" if number is None else format(number, spec)


def loop_lines(entry: dict[str, Any]) -> list[str]:
    lines = []
    for name, m in entry.get("models", {}).items():
        lines.append(
            f"  {name}: trainer {fmt(value(m, 'trainer', 'epoch'), '.3f')} s/epoch, baseline loop {fmt(value(m, 'baseline', 'epoch'), '.3f')} "
            f"s/epoch, speed-up {fmt(value(m, 'speedup'), '.2f')}x, {fmt(value(m, 'achieved'), '.3g')} TFLOP/s, "
            f"{fmt(value(m, 'ceiling_fraction'), '.1%')} of the bf16 ceiling"
        )
    return lines + ["  target: a preact-resnet18 epoch over GTSRB in ≤ 0.25 s"]


def accuracy_lines(entry: dict[str, Any]) -> list[str]:
    epochs = entry.get("epochs", [])
    last = f"; {fmt(value(epochs[-1], 'test_accuracy'), '.4f')} after epoch {epochs[-1]['epoch']}" if epochs else ""
    return [
        f"  test accuracy {fmt(value(entry, 'target'), '.2f')} after {fmt(value(entry, 'time_to_target'), '.2f')} s of training{last}",
        "  target: ≥ 0.98 in ≤ 2 s",
    ]


def stacked_lines(entry: dict[str, Any]) -> list[str]:
    return [
        f"  {name}: {entry.get('trainings')} trainings one after another {fmt(value(m, 'one_after_another'), '.2f')} s, "
        f"stacked {fmt(value(m, 'stacked'), '.2f')} s, gain {fmt(value(m, 'gain'), '.2f')}x"
        for name, m in entry.get("models", {}).items()
    ] + ["  a gain above 1 is where the matrix should stack (Workbench.stacks_populations)"]


def matrix_lines(entry: dict[str, Any]) -> list[str]:
    lines = [
        f"  wall {fmt(value(entry, 'wall'), '.1f')} s, {entry.get('cells_finished')} of {entry.get('cells_total')} cells, "
        f"projected {fmt(value(entry, 'projected_wall'), '.0f')} s; target: ≤ 600 s"
    ]
    lines += [f"  {name}: {fmt(value(phase, 'share'), '.1%')}" for name, phase in entry.get("phases", {}).items()]
    return lines + [f"  failed: {line}" for line in entry.get("cells_failed", [])]


def print_summary(report: dict[str, Any], out: Path) -> None:
    env = report["environment"]
    print(f"device {env['device_name']}, torch {env['torch']}, commit {env['git_commit']}")
    for name, lines in (("loop", loop_lines), ("accuracy", accuracy_lines), ("stacked", stacked_lines), ("matrix", matrix_lines)):
        entry = report["sections"][name]
        print(f"{name}: {entry['status']}, {fmt(value(entry, 'elapsed'), '.1f')} s of {fmt(value(entry, 'budget'), 'g')} s")
        if entry["status"] not in ("pending", "skipped"):
            for line in lines(entry):
                print(line)
        for key in ("reason", "error"):
            if entry.get(key):
                print(f"  {key}: {entry[key]}")
    print(f"wrote {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="the JSON file to write (required)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--data-root", type=Path, help="where the prepared gtsrb.npz lies (default: $BENCHBD_DATA or ~/.cache/benchbd)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: about a minute on a 2-core CPU")
    parser.add_argument("--profile", help="training profile of every section (default fast; cpu with --quick)")
    parser.add_argument("--models", help="section 1's models, comma-separated (default preact-resnet18,small-cnn; narrow-cnn with --quick)")
    parser.add_argument("--workers", type=int, help="DataLoader workers of section 1's baseline loop (default 4; 1 with --quick)")
    parser.add_argument("--accuracy-target", type=float, help="section 2's test accuracy (default 0.98; 0.04 with --quick)")
    parser.add_argument("--loop-budget", type=float, help="seconds for section 1 (default 90; 200 with --quick)")
    parser.add_argument("--accuracy-budget", type=float, help="seconds for section 2 (default 60; 200 with --quick)")
    parser.add_argument("--stacked-budget", type=float, help="seconds for section 3 (default 30; 200 with --quick)")
    parser.add_argument("--matrix-budget", type=float, help="seconds for section 4 (default 270; 200 with --quick)")
    parser.add_argument("--section", choices=sorted(CHILD_SECTIONS), help=argparse.SUPPRESS)
    parser.add_argument("--settings", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--section-out", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.section:
        return run_child(args.section, Settings.read(args.settings), args.section_out)
    if args.out is None:
        parser.error("--out FILE.json is required")
    try:
        return check(args)
    except BenchbdError as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
