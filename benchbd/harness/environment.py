"""What a result was computed with: package versions, device, and benchbd's own git commit."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("benchbd", "torch", "torchvision", "numpy", "scipy", "scikit-learn", "pluggy", "pandas")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    """``git ARGS`` in benchbd's source folder (not the caller's working directory), or None without git."""
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _git_commit() -> str | None:
    """The commit of the benchbd checkout, ``+modified`` when it has uncommitted changes; None for an installed
    release (no git checkout around the package)."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return None
    return f"{commit}+modified" if _git("status", "--porcelain", "--untracked-files=no") else commit


def _cpu_name() -> str:
    """The processor's model name (Linux's /proc/cpuinfo), else what ``platform`` knows, else "cpu"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def environment(device: torch.device) -> dict[str, Any]:
    """``cpu_capability`` is the vector instruction set torch's CPU kernels use (``AVX2``, ``AVX512``; the
    ``ATEN_CPU_CAPABILITY`` variable lowers it): float32 training on a CPU rounds differently, hence trains other
    models, under another one (docs/findings.md, "The trainer on a CPU")."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "git_commit": _git_commit(),
    }


def cpu_setting(environment: dict[str, Any]) -> str | None:
    """What float32 training on a CPU depends on beyond the code, as "AVX512 on 2 threads"; None off a CPU."""
    if environment.get("device") != "cpu":
        return None
    return f"{environment.get('cpu_capability')} on {environment.get('torch_threads')} threads"
