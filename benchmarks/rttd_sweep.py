"""RTTD detection and overhead over sub-run length k and server count n (RTTD figure 2's trade-off).

    python benchmarks/rttd_sweep.py [--device auto] [--quick] [--attack patch] [--ks 25,50,100] [--ns 4,8] \
        [--dataset synth-signs] [--profile fast] [--out RUN_DIR]

For every (k, n) one matrix cell `--attacks ATTACK --defenses rttd -P rttd.sub_run_steps=k -P simulation.servers=n` on
``--dataset`` (``--quick``: 860 synth-signs training images, k and n scaled down), half the servers malicious.
Prints the malicious servers flagged (tpr), benign ones flagged (fpr) and the extra steps m·k·(n−1) as a fraction
of one job. All cells share one run directory (``--out``, kept; default a temporary one), so the poisoned model is
trained once and a matrix run there with the same dataset, profile and attack lends its cells.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from tabulate import tabulate

from benchbd.data.synth_signs import generate_synth_signs
from benchbd.harness.matrix import Matrix
from benchbd.harness.config import MatrixConfig
from benchbd.harness.progress import Progress
from benchbd.harness.results import latest_per_seed, read_records
from benchbd import params as plugin_params
from benchbd.harness.servers import Simulation
from benchbd.registry import default_registry


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny data, k in 4,8 and n in 4,6 unless given")
    parser.add_argument("--attack", default="patch")
    parser.add_argument("--ks", type=_ints, help="sub-run lengths (default 25,50,100; quick 4,8)")
    parser.add_argument("--ns", type=_ints, help="server counts (default 4,8; quick 4,6)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--dataset", default="synth-signs", help="the matrix's --dataset (not with --quick)")
    parser.add_argument("--profile", default="fast", help="the matrix's --profile")
    parser.add_argument("--out", type=Path, help="the run directory (default: a temporary one)")
    args = parser.parse_args()
    ks = args.ks or ([4, 8] if args.quick else [25, 50, 100])
    ns = args.ns or ([4, 6] if args.quick else [4, 8])
    registry = default_registry()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        dataset = args.dataset
        if args.quick:
            path = Path(workdir) / "signs.npz"
            np.savez(path, **generate_synth_signs(seed=0, n_train=860, n_test=430))
            dataset = f"npz:{path}"
        out = args.out or Path(workdir) / "run"
        for n in ns:
            for k in ks:
                params = {"rttd": {"sub_run_steps": k}, "simulation": {"servers": n}}
                config = MatrixConfig(dataset=dataset, attacks=[args.attack], defenses=["rttd"], mode="single", profile=args.profile,
                                      device=args.device, out=out, params=params, seeds=args.seeds)
                Matrix(config, registry, Progress()).run()
                simulation = {**plugin_params.as_dict(Simulation()), "servers": n}  # other variants in --out are not this sweep's
                records = [r for r in latest_per_seed(read_records(out / "results.jsonl"))[0]  # a cell once, as computed last
                           if r["defense"] == "rttd" and r["details"]["k"] == k and r["params"]["simulation"] == simulation]
                failed = [r["error"] for r in records if r["status"] != "ok"]
                if failed:
                    raise SystemExit(f"k={k} n={n}: {failed[0]}")
                rows.append([n, k, np.mean([r["tpr"] for r in records]), np.mean([r["fpr"] for r in records]),
                             records[0]["details"]["overhead_fraction"], np.mean([r["seconds"] for r in records])])
    print(tabulate(rows, headers=["n", "k", "tpr", "fpr", "extra steps / job", "seconds"], floatfmt=".2f"))


if __name__ == "__main__":
    main()
