"""The prepared GPU job of issue 17: AEGIS on robust models of the paper's capacity, in one device call.

On the CPU's models (narrow-cnn, small-cnn) no backdoored target class splits into the extra cluster AEGIS counts
(docs/findings.md, "aegis"); the open cause is capacity (the paper's ResNets). This runs the patch population of
``leaderboard/gtsrb10-cpu-aegis/`` (the same data, attack, PGD budget and epochs) with preact-resnet18 and AEGIS's
defaults (one run, the paper's, as in ``leaderboard/gtsrb10-cpu-aegis-triggers/``; that table used 3), and first
answers whether the target splits:

    mkdir -p carry && cp ../shared/data/gtsrb32.npz ../shared/data/decode_gtsrb32.py carry/   # here, once (.gitignore'd)
    # the device call: `run` with carry ["carry"] and timeout_s 600
    python3 -m pip install -q --no-deps --no-build-isolation -e . \\
        && mkdir -p /tmp/data && python3 carry/decode_gtsrb32.py /tmp/data/gtsrb.npz carry/gtsrb32.npz \\
        && python3 benchmarks/gpu_aegis.py --data-root /tmp/data --out $OUT/aegis.json
    python benchmarks/gpu_aegis.py --quick --device cpu --out /tmp/aegis.json   # tiny sizes, under a minute on 2 cores

Two sections, each a child process under its own budget (``benchmarks/gpu_check.py``'s machinery: an overrun is
stopped and keeps what it had finished; ``--out`` is rewritten every few seconds):

1. ``matrix`` (``--matrix-budget``, 420 s): ``benchbd matrix --dataset gtsrb:every=2,classes=10 --model
   preact-resnet18 --profile cpu --epochs 16 --attacks patch --defenses aegis --mode single --clean-models 4``: the
   standard poisoned model, AEGIS's PGD-trained backdoored model and 4 PGD-trained clean ones, then the five
   judgements. Figures: each model's epochs done and seconds per epoch (from the progress log, so a stopped run
   still sizes the next lease), and, when the cell finished, its record: detection over the five models, the judged
   model's clean accuracy, ASR and adversarial accuracy, each model's cluster counts per class.
2. ``composition`` (``--composition-budget``, 90 s): ``benchmarks/aegis_cluster_composition.py`` on the robust
   backdoored model (found by the harness's own cache key), the target class 0 and class 2 (the class whose own
   images split in the CPU's clean models), 2 draws: which clusters hold the class's own images and which its
   translations. It runs whenever section 1 trained that model, finished or not.

The judgements' clustering runs on the CPU whatever the device: per class a t-SNE of 1,000 points (about 4 s on
the 2-core AMD EPYC, not faster with 2 threads than 1) and mean shift (6-10 s on one core; its climbs now spread over
torch's CPU threads, 1.6 times faster on 2), so about 100 s a model there, 500 s for the five: on the device's 16
cores count on at least 40 s a model (the t-SNEs) beside the robust trainings (2026-12-07, preact-resnet18 features
of 1,000 GTSRB images, an untrained model's; the CPU's four-clean-models run spent 120-135 s a narrow-cnn model
between its last translation and the next model).

The matrix's run directory (``NAME.run/``, its models left out) and each section's log lie beside ``--out``.
``--quick``: synth-signs (430 training images), narrow-cnn, 2 epochs, 1 clean model, AEGIS cut to class 0 with
40 seeds; the same code paths.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchbd.data.images import default_data_root
from benchbd.data.synth_signs import generate_synth_signs
from benchbd.harness.config import MatrixConfig
from benchbd.harness.environment import environment
from benchbd.harness.plan import Plan
from benchbd.harness.results import RESULTS, read_records, write_json_atomic
from benchbd.harness.units.model import training_identity
from benchbd.registry import default_registry
from benchbd.training.trainer import resolve_device
from gpu_check import Section, figure, run_section

BENCHMARKS = Path(__file__).resolve().parent
#: The CPU patch population's setting (leaderboard/gtsrb10-cpu-aegis/, one run) at the paper's capacity; ``--quick``: tiny sizes.
FULL = {"dataset": "gtsrb:every=2,classes=10", "model": "preact-resnet18", "epochs": 16, "clean_models": 4,
        "aegis": {}, "classes": "0,2", "draws": 2, "seeds": 500}
QUICK = {"model": "narrow-cnn", "epochs": 2, "clean_models": 1, "classes": "0", "draws": 1, "seeds": 40,
         "aegis": {"seeds": "40", "translate_steps": "5", "class_images": "20", "classes": "0", "robustness_images": "16",
                   "min_adversarial_accuracy": "0"}}
PROGRESS = re.compile(r"\[benchbd\s+([\d.]+)s\]\s+(.+?): epoch (\d+)/(\d+)")


def matrix_config(sizes: dict[str, Any], device: str, data_root: Path, run_dir: Path) -> MatrixConfig:
    return MatrixConfig(
        dataset=sizes["dataset"], model=sizes["model"], profile="cpu", epochs=sizes["epochs"], attacks=["patch"],
        defenses=["aegis"], mode="single", device=device, clean_models=sizes["clean_models"], out=run_dir,
        data_root=data_root, params={"aegis": dict(sizes["aegis"])},
    )


def matrix_command(config: MatrixConfig) -> list[str]:
    """``benchbd matrix`` with exactly ``config``'s settings (so the cache key below is the run's)."""
    command = [
        sys.executable, "-m", "benchbd.cli", "matrix", "--dataset", str(config.dataset), "--model", str(config.model),
        "--profile", str(config.profile), "--epochs", str(config.epochs), "--attacks", ",".join(config.attacks or []),
        "--defenses", ",".join(config.defenses or []), "--mode", str(config.mode), "--device", config.device,
        "--clean-models", str(config.clean_models), "--data-root", str(config.data_root), "--out", str(config.out),
    ]
    for key, value in config.params["aegis"].items():
        command += ["-P", f"aegis.{key}={value}"]
    return command


def robust_backdoored_model(config: MatrixConfig) -> Path:
    """Where the run caches AEGIS's PGD-trained backdoored model: the key ``units/model.judged_models`` gives it."""
    plan = Plan(config, default_registry())
    key = plan.model_key(plan.groups[0], training=training_identity(plan.defenses["aegis"]))
    return Path(config.out) / "models" / f"{key}.pt"


def training_progress(log: Path) -> dict[str, Any]:
    """Per model of the progress log: epochs done of planned, and seconds per epoch between its first and last
    reported epoch (None with fewer than two)."""
    seen: dict[str, list[tuple[float, int, int]]] = {}
    for match in PROGRESS.finditer(log.read_text(errors="replace") if log.is_file() else ""):
        seen.setdefault(match[2].strip(), []).append((float(match[1]), int(match[3]), int(match[4])))
    progress = {}
    for label, marks in seen.items():
        (first, k_first, planned), (last, k_last, _) = marks[0], marks[-1]
        per_epoch = (last - first) / (k_last - k_first) if k_last > k_first else None
        progress[label] = {"epochs": k_last, "planned": planned,
                           "per_epoch": None if per_epoch is None else figure(round(per_epoch, 2), "s/epoch")}
    return progress


def verdict_summary(details: dict[str, Any]) -> dict[str, Any]:
    """One judged model: adversarial accuracy, and per class its cluster counts (all, and the translations')."""
    run = (details.get("runs") or [{}])[0]
    return {"adversarial_accuracy": details.get("adversarial_accuracy"),
            "cluster_counts": run.get("cluster_counts"), "translation_cluster_counts": run.get("translation_cluster_counts")}


def matrix_figures(run_dir: Path, log: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {"training": training_progress(log)}
    records = read_records(run_dir / RESULTS) if (run_dir / RESULTS).is_file() else []
    if records:
        record = records[-1]
        figures["record"] = {
            key: record.get(key) for key in ("status", "error", "auroc", "tpr", "fpr", "class_fpr", "target_found",
                                             "judged_model", "not_judged", "seconds")
        }
        figures["record"]["backdoored"] = verdict_summary(record.get("details") or {})
        figures["record"]["clean"] = [verdict_summary(d or {}) for d in record.get("clean_details") or []]
    return figures


def composition_section(model: Path, sizes: dict[str, Any], device: str, data_root: Path, budget: float, log: Path) -> Section:
    command = [sys.executable, str(BENCHMARKS / "aegis_cluster_composition.py"), str(model), "--classes", sizes["classes"],
               "--dataset", sizes["dataset"], "--model", sizes["model"], "--draws", str(sizes["draws"]),
               "--seeds", str(sizes["seeds"]), "--device", device, "--data-root", str(data_root)]

    def lines(elapsed: float) -> dict[str, Any]:
        return {"lines": log.read_text(errors="replace").splitlines() if log.is_file() else []}

    return Section("composition", budget, command, lines)


def check(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    sizes = {**FULL, **(QUICK if args.quick else {})}
    with tempfile.TemporaryDirectory(prefix="gpu_aegis-") as folder:
        data_root = Path(args.data_root or default_data_root())
        if args.quick:
            tiny = Path(folder) / "tiny-signs.npz"
            np.savez(tiny, **generate_synth_signs(seed=0, n_train=430, n_test=215))
            sizes["dataset"] = f"npz:{tiny}"
        run_dir = out.with_suffix(".run")
        shutil.rmtree(run_dir, ignore_errors=True)
        config = matrix_config(sizes, args.device, data_root, run_dir)
        command = matrix_command(config)
        matrix_log, composition_log = out.with_suffix(".matrix.log"), out.with_suffix(".composition.log")
        report: dict[str, Any] = {
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "quick": args.quick,
            "environment": {**environment(device), "torch": torch.__version__, "cuda": torch.version.cuda},
            "command": command[2:],
            "sections": {},
        }

        def update(name: str) -> Any:
            def write(entry: dict[str, Any]) -> None:
                report["sections"][name] = entry
                write_json_atomic(out, report)
            return write

        matrix = Section("matrix", args.matrix_budget, command, lambda elapsed: matrix_figures(run_dir, matrix_log))
        print(f"matrix: running, budget {args.matrix_budget:g} s, log {matrix_log}", flush=True)
        run_section(matrix, matrix_log, update("matrix"))
        model = robust_backdoored_model(config)
        if model.is_file():
            print(f"composition: running on {model.name}, budget {args.composition_budget:g} s", flush=True)
            section = composition_section(model, sizes, args.device, data_root, args.composition_budget, composition_log)
            run_section(section, composition_log, update("composition"))
        else:
            update("composition")({"status": "skipped", "reason": f"the matrix did not train {model.name}"})
        shutil.rmtree(run_dir / "models", ignore_errors=True)  # tens of MB a model: not worth bringing back
    print_summary(report, out)
    return 0


def print_summary(report: dict[str, Any], out: Path) -> None:
    matrix, composition = report["sections"]["matrix"], report["sections"]["composition"]
    print(f"\n== AEGIS at the paper's capacity ({report['environment']['device_name']}); full report {out}")
    print(f"matrix: {matrix.get('status')}, {matrix.get('elapsed', {}).get('value', 0):.0f} s of {matrix['budget']['value']:g} s")
    for label, p in matrix.get("training", {}).items():
        per_epoch = p["per_epoch"]["value"] if p["per_epoch"] else None
        print(f"  {label}: {p['epochs']}/{p['planned']} epochs, {'-' if per_epoch is None else f'{per_epoch:.1f}'} s/epoch")
    record = matrix.get("record")
    if record:
        print(f"  record: {record['status']}; AUROC {record['auroc']}, TPR {record['tpr']}, FPR {record['fpr']}, "
              f"target found {record['target_found']}; judged model {record['judged_model']}")
        for name, verdict in [("backdoored", record["backdoored"]), *[(f"clean {i + 1}", v) for i, v in enumerate(record["clean"])]]:
            print(f"  {name}: adversarial accuracy {verdict['adversarial_accuracy']}, clusters {verdict['cluster_counts']}, "
                  f"translations' clusters {verdict['translation_cluster_counts']}")
    print(f"composition: {composition.get('status')}{': ' + composition['reason'] if 'reason' in composition else ''}")
    for line in composition.get("lines", [])[-12:]:
        print(f"  {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the report (JSON); logs and the run directory beside it")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--data-root", type=Path, help="where the prepared gtsrb.npz lies (default: $BENCHBD_DATA or ~/.cache/benchbd)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: under a minute on a 2-core CPU")
    parser.add_argument("--matrix-budget", type=float, default=420.0, help="seconds for section 1 (default 420)")
    parser.add_argument("--composition-budget", type=float, default=90.0, help="seconds for section 2 (default 90)")
    return check(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
