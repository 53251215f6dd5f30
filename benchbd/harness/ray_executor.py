"""``--executor ray``: the matrix's groups of cells as Ray tasks on an existing cluster (local by default).

Each task rebuilds the matrix from its config in the worker and runs one group (one poisoned model and the
defenses that judge it), reading and writing the model cache in the run directory, which must be on a path all
workers see. The driver appends the records as tasks finish, so resume and the results file behave as with the
local executor.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from benchbd.errors import BenchbdError

if TYPE_CHECKING:
    from benchbd.harness.matrix import Group, MatrixConfig


def _run_group_task(config: MatrixConfig, run_path: str, group: Group, pending: list[str]) -> list[dict[str, Any]]:
    from benchbd.harness.matrix import Matrix
    from benchbd.harness.progress import SilentProgress
    from benchbd.harness.results import RunDirectory
    from benchbd.registry import default_registry

    matrix = Matrix(config, default_registry(config.plugins), SilentProgress())
    return list(matrix.run_group(RunDirectory(Path(run_path), lock=False), group, pending))


def run_on_ray(config: MatrixConfig, run_path: Path, work: list[tuple[Group, list[str]]], use_gpu: bool) -> Iterator[dict[str, Any]]:
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
