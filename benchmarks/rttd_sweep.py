"""RTTD detection and overhead over sub-run length k and server count n (RTTD figure 2's trade-off).

    python benchmarks/rttd_sweep.py [--device auto] [--quick] [--attack patch] [--ks 25,50,100] [--ns 4,8]

For every (k, n) one matrix cell `--attacks ATTACK --defenses rttd -P rttd.sub_run_steps=k -P simulation.servers=n` on
synth-signs (``--quick``: 860 training images, k and n scaled down), half the servers malicious. Prints the
malicious servers flagged (tpr), benign ones flagged (fpr) and the extra steps m·k·(n−1) as a fraction of one job.
All cells share one run directory, so the poisoned model is trained once.
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
from benchbd.harness.results import read_records
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
    args = parser.parse_args()
    ks = args.ks or ([4, 8] if args.quick else [25, 50, 100])
    ns = args.ns or ([4, 6] if args.quick else [4, 8])
    registry = default_registry()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        dataset = "synth-signs"
        if args.quick:
            path = Path(workdir) / "signs.npz"
            np.savez(path, **generate_synth_signs(seed=0, n_train=860, n_test=430))
            dataset = f"npz:{path}"
        out = Path(workdir) / "run"
        for n in ns:
            for k in ks:
                params = {"rttd": {"sub_run_steps": k}, "simulation": {"servers": n}}
                config = MatrixConfig(dataset=dataset, attacks=[args.attack], defenses=["rttd"], mode="single",
                                      device=args.device, out=out, params=params, seeds=args.seeds)
                Matrix(config, registry, Progress()).run()
                records = [r for r in read_records(out / "results.jsonl")
                           if r["defense"] == "rttd" and r["details"]["k"] == k and r["servers"] == n]
                failed = [r["error"] for r in records if r["status"] != "ok"]
                if failed:
                    raise SystemExit(f"k={k} n={n}: {failed[0]}")
                rows.append([n, k, np.mean([r["tpr"] for r in records]), np.mean([r["fpr"] for r in records]),
                             records[0]["details"]["overhead_fraction"], np.mean([r["seconds"] for r in records])])
    print(tabulate(rows, headers=["n", "k", "tpr", "fpr", "extra steps / job", "seconds"], floatfmt=".2f"))


if __name__ == "__main__":
    main()
