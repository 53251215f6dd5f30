"""Wall time of `benchbd matrix` with no arguments, and the figures issue 19 asks of it on a CPU.

    python benchmarks/default_matrix.py [--device auto] [--quick]

On a CPU the default is the demo (`benchbd.harness.config.CPU_DEMO`: every built-in attack and defense of the three
units on synth-signs:classes=10); on a GPU every attack against every defense on synth-signs. Runs in a fresh
temporary directory so nothing is resumed; ``--quick`` runs only patch × {none, spectral}. The dataset's cache is
prepared first and timed apart (it is made once per machine). Then, from the records: cells ok of all, the
undefended models' clean accuracy, each attack's undefended ASR (as trained, and boosted where the attack has a
test-time boost), BaDLoss's AUROC on patch, against the targets (clean accuracy ≥ 90%, each dirty-label data attack
≥ 80% ASR, BaDLoss on patch ≥ 0.9).

The demo's wall time on 2-core machines varies by host more than twofold (docs/findings.md), so the script first
times the host: narrow-cnn, the cpu profile, 4,096 random images, the median of 2 epochs after a warm-up
(``trainer_epoch.py --model narrow-cnn --profile cpu --quick --epochs 2``'s figure), to be quoted with the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchbd.attacks import DataPoisoningAttack
from benchbd.harness.config import MatrixConfig
from benchbd.harness.plan import Plan
from benchbd.registry import default_registry
from benchbd.training.profiles import PROFILES
from benchbd.training.trainer import resolve_device
from trainer_epoch import epoch_seconds, random_images


def figures(records: list[dict[str, Any]], registry: Any) -> list[str]:
    """The lines that compare the run with issue 19's targets."""
    baselines = [r for r in records if r["defense"] == "none" and r["mode"] == "single" and r["status"] == "ok"]
    lines = [f"cells ok: {sum(r['status'] == 'ok' for r in records)} of {len(records)}"
             f" ({sum(r['status'] == 'not_applicable' for r in records)} not applicable)"]
    lowest = min(baselines, key=lambda r: r["clean_acc"], default=None)
    if lowest:
        lines.append(f"undefended clean accuracy: {100 * lowest['clean_acc']:.1f}% at the lowest ({lowest['attacks'][0]}), "
                     f"target >= 90%: {'met' if lowest['clean_acc'] >= 0.9 else 'missed'}")
    for r in baselines:
        name = r["attacks"][0]
        boosted = (r.get("asr_boosted") or {}).get(name)
        cls = registry.attack(name)
        dirty = issubclass(cls, DataPoisoningAttack) and cls.dirty_label
        verdict = f", target >= 80%: {'met' if r['asr'][name] >= 0.8 else 'missed'}" if dirty else ""
        lines.append(f"  {name}: CA {100 * r['clean_acc']:.1f}%, ASR {100 * r['asr'][name]:.1f}% as trained"
                     + (f", {100 * boosted:.1f}% boosted" if boosted is not None else "") + verdict)
    multi = [r for r in records if r["defense"] == "none" and r["mode"] == "multi" and r["status"] == "ok"]
    for r in multi:
        asr = ", ".join(f"{n} {100 * v:.0f}%" for n, v in r["asr"].items())
        lines.append(f"  multi-attack set: CA {100 * r['clean_acc']:.1f}%, ASR as trained {asr}")
    badloss = [r for r in records if r["defense"] == "badloss" and r["attacks"] == ["patch"] and r["status"] == "ok"]
    for r in badloss:
        lines.append(f"badloss AUROC on patch: {r['auroc']:.3f}, target >= 0.9: {'met' if r['auroc'] >= 0.9 else 'missed'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="patch with none and spectral only")
    args = parser.parse_args()
    registry = default_registry()
    device = resolve_device(args.device)
    reference = statistics.median(epoch_seconds(device, "narrow-cnn", PROFILES["cpu"], *random_images(4096), epochs=2))
    print(f"host reference: narrow-cnn, cpu profile, 4,096 random images: {reference:.2f} s an epoch on {device.type}")
    started = time.perf_counter()
    plan = Plan(MatrixConfig(device=args.device), registry)  # prepares the default dataset's cache
    print(f"dataset {plan.config.dataset} prepared in {time.perf_counter() - started:.1f} s; {plan.total_cells} cells")
    command = [sys.executable, "-m", "benchbd.cli", "matrix", "--device", args.device]
    if args.quick:
        command += ["--attacks", "patch", "--defenses", "none,spectral"]
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        result = subprocess.run([*command, "--out", f"{workdir}/run"], cwd=workdir, env={**os.environ, "COLUMNS": "160"}, check=False)
        elapsed = time.perf_counter() - started
        results = Path(workdir) / "run" / "results.jsonl"
        records = [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    print(f"`benchbd matrix{' (quick)' if args.quick else ''}` on {args.device}: {elapsed:.1f} s wall, exit {result.returncode}")
    for line in figures(records, registry):
        print(line)


if __name__ == "__main__":
    main()
