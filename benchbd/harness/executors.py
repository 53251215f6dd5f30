"""Where a matrix's groups run: in this process, or as Ray tasks on a cluster (``--executor ray``, local by default).

A Ray task rebuilds the plan from the config in its worker and runs one group (one poisoned model and the defenses
that judge it), reading and writing the model cache in the run directory, which must be on a path all workers see.
The driver appends the records as tasks finish, so resume and the results file behave as with the local executor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from benchbd.errors import BenchbdError
from benchbd.harness.cells import run_group
from benchbd.harness.config import MatrixConfig
from benchbd.harness.plan import Group, Plan
from benchbd.harness.progress import Progress, SilentProgress
from benchbd.harness.results import RunDirectory
from benchbd.harness.workbench import Workbench
from benchbd.registry import default_registry

Work = list[tuple[Group, list[str]]]


def run_local(plan: Plan, run_dir: RunDirectory, work: Work, progress: Progress) -> Iterator[dict[str, Any]]:
    """Run the groups one after another in this process; yield each record as it is finished."""
    bench = Workbench(plan, run_dir, step=progress.step)
    for group, pending in work:
        yield from run_group(bench, group, pending, progress)


def _run_group_task(config: MatrixConfig, run_path: str, group: Group, pending: list[str]) -> list[dict[str, Any]]:
    plan = Plan(config, default_registry(config.plugins))
    bench = Workbench(plan, RunDirectory(Path(run_path), lock=False))
    return list(run_group(bench, group, pending, SilentProgress()))


def run_on_ray(config: MatrixConfig, run_path: Path, work: Work, use_gpu: bool) -> Iterator[dict[str, Any]]:
    """Submit one task per group; yield the records of each task as it finishes."""
    try:
        import ray
    except ImportError:
        raise BenchbdError("--executor ray needs Ray: pip install 'benchbd[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=config.ray_address, log_to_driver=False)
        except ConnectionError as exc:
            raise BenchbdError(f"could not connect to the Ray cluster at {config.ray_address}: {exc}") from None
    task = ray.remote(num_cpus=1, num_gpus=1 if use_gpu else 0)(_run_group_task)
    pending = [task.remote(config, str(Path(run_path).resolve()), group, names) for group, names in work]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield from ray.get(done[0])
