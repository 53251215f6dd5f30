"""Wall time of `benchbd matrix` with no arguments (the default: every attack and defense on synth-signs).

    python benchmarks/default_matrix.py [--device auto] [--quick]

Runs in a fresh temporary directory so nothing is resumed; ``--quick`` runs only patch × {none, spectral}.
The synth-signs cache is generated first and not timed (it is made once per machine).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from benchbd.data.images import default_data_root
from benchbd.registry import default_registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="patch with none and spectral only")
    args = parser.parse_args()
    default_registry().dataset("synth-signs").load(None, default_data_root())
    command = [sys.executable, "-m", "benchbd.cli", "matrix", "--device", args.device]
    if args.quick:
        command += ["--attacks", "patch", "--defenses", "none,spectral"]
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        result = subprocess.run(command, cwd=workdir, env={**os.environ, "COLUMNS": "160"}, check=False)
        elapsed = time.perf_counter() - started
    print(f"`benchbd matrix{' (quick)' if args.quick else ''}` on {args.device}: {elapsed:.1f} s wall, exit {result.returncode}")


if __name__ == "__main__":
    main()
