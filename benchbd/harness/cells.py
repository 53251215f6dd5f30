"""Running one group of cells: train (or load) the group's poisoned model, let each pending defense judge its unit
(:mod:`benchbd.harness.units`), and make each outcome a record. A failing plugin fails its cells, never the matrix:
its error and a traceback log go into the record.
"""

from __future__ import annotations

import signal
import time
import traceback
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

from benchbd import params as plugin_params
from benchbd.errors import BenchbdError
from benchbd.harness import units
from benchbd.harness.config import SIMULATION
from benchbd.harness.plan import Group
from benchbd.harness.progress import Progress
from benchbd.harness.workbench import Workbench


class CellTimeout(BenchbdError):
    """A cell ran past ``--cell-timeout``."""


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise :class:`CellTimeout` in the main thread if the block runs longer than ``seconds`` (None: no limit)."""
    if not seconds:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise CellTimeout(f"{what} exceeded the cell time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def base_record(bench: Workbench, group: Group, defense: str) -> dict[str, Any]:
    """What every record of a cell says, whatever its outcome: the cell, its parameters, its code and the
    environment it was computed in."""
    plan = bench.plan
    instance = plan.defenses[defense]
    params: dict[str, Any] = {
        "attacks": dict(plan.group_identity(group)["attacks"]),
        "defense": plugin_params.as_dict(instance),
    }
    identity = plan.cell_identity(group, defense)
    if SIMULATION in identity:  # a training-run cell: its threat model
        params[SIMULATION] = identity[SIMULATION]
    if settings := plan.cell_settings(group, defense):
        params["harness"] = settings
    return {
        **plan.setting,
        "family": plan.data.family,
        "mode": group.mode,
        "attacks": list(group.attacks),
        "defense": defense,
        "unit": instance.unit,
        "seed": group.seed,
        "params": params,
        "plugins": {
            "attacks": {name: plan.registry.provenance("attacks", name) for name in group.attacks},
            "defense": plan.registry.provenance("defenses", defense),
            "model": plan.registry.provenance("models", plan.model_name),
        },
        "code": plan.cell_code(group, defense),
        "status": "ok",
        "error": None,
        "config_hash": plan.cell_hash(group, defense),
        "environment": bench.environment,
    }


def error_record(bench: Workbench, base: dict[str, Any], exc: BaseException, started: float) -> dict[str, Any]:
    log = bench.run_dir.logs / f"{base['config_hash']}.log"
    log.write_text("".join(traceback.format_exception(exc)))
    summary = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return finished({**base, "status": "error", "error": f"{type(exc).__name__}: {summary} (traceback: {log})"}, started)


def finished(record: dict[str, Any], started: float) -> dict[str, Any]:
    """The record with how long its cell took since ``started`` (``time.perf_counter``) and when it finished (UTC):
    which of two records of one cell is the later does not depend on the order of the lines that hold them."""
    return {**record, "seconds": time.perf_counter() - started,
            "finished": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}


def run_group(bench: Workbench, group: Group, pending: list[str], progress: Progress) -> Iterator[dict[str, Any]]:
    """Yield each pending cell's record as soon as it is finished."""
    plan, limit = bench.plan, bench.plan.config.cell_timeout
    started = time.perf_counter()
    progress.cell_started(f"{group.label} / training the poisoned model / seed {group.seed}")
    try:
        with time_limit(limit, "training the poisoned model"):
            state = bench.poisoned_group(group)
    except Exception as exc:  # noqa: BLE001 - a failing plugin fails its cells, not the matrix
        for name in pending:
            yield error_record(bench, base_record(bench, group, name), exc, started)
        return
    for name in pending:
        cell_started = time.perf_counter()
        base = {**base_record(bench, group, name), **state.summary}
        progress.cell_started(f"{group.label} / {name} / seed {group.seed}")
        try:
            with time_limit(limit, f"defense {name}"):
                result = units.judge(bench, state, plan.defenses[name], name)
            yield finished({**base, **result}, cell_started)
        except Exception as exc:  # noqa: BLE001
            yield error_record(bench, base, exc, cell_started)
