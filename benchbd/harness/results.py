"""The run directory: ``invocations.jsonl`` (each ``benchbd matrix`` on it: its resolved config and environment),
``results.jsonl`` (one JSON object per finished cell), cell logs and the model cache. Everything is written so that
a crash at any point loses no finished cell and leaves nothing half-written that a later run would read.
"""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from benchbd.errors import BenchbdError

RESULTS = "results.jsonl"
INVOCATIONS = "invocations.jsonl"
CIRCUMSTANCES = ("seconds", "train_seconds", "finished", "environment")


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a results file; a torn or corrupt line (a crash mid-write) is reported and skipped."""
    records = []
    if not path.is_file():
        return records
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                warnings.warn(f"{path}:{number}: skipping a torn or corrupt line (an interrupted write)", stacklevel=2)
    return records


def outcome(record: dict[str, Any]) -> dict[str, Any]:
    """A record without its circumstances (how long the cell took, when it finished, where it ran): what any
    computation of the cell on the same code must reproduce, whether alone, after other cells, resumed or on a Ray
    worker."""
    return {key: value for key, value in record.items() if key not in CIRCUMSTANCES}


def experiment(record: dict[str, Any]) -> str:
    """What a record is one seed of: its mode, attacks, defense and parameters, as one string."""
    return json.dumps([record["mode"], record["attacks"], record["defense"], record.get("params")], sort_keys=True, default=str)


def latest_per_seed(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The records with each experiment's seed kept once, in their order, and how many were dropped. A cell
    computed again in the same run directory (its code or a setting of the harness changed, so its hash did)
    appends a second record of the same seed and parameters, and results files of several machines may be joined:
    the one that finished last stands, since two records of one seed are not two seeds; among records without a
    finish time (written before records had one) or with the same, the one written last."""
    latest: dict[tuple[str, int], int] = {}
    for index, record in enumerate(records):
        key = experiment(record), record["seed"]
        if key not in latest or record.get("finished", "") >= records[latest[key]].get("finished", ""):
            latest[key] = index
    return [records[index] for index in sorted(latest.values())], len(records) - len(latest)


def describe_setting(record: dict[str, Any]) -> str:
    """What a record was measured on, as a run directory holds one: its dataset, model and training profile."""
    return f"dataset {record.get('dataset')}, model {record.get('model')}, profile {record.get('profile')}"


def check_one_setting(records: list[dict[str, Any]], run_dir: str | Path) -> None:
    """Refuse records of several settings (:func:`describe_setting`; results files of several runs joined): one
    table, or :func:`latest_per_seed`, would take the same cell at two settings for one."""
    settings = sorted({describe_setting(r) for r in records})
    if len(settings) > 1:
        raise BenchbdError(f"{run_dir}: its records come from {len(settings)} settings ({'; '.join(settings)}); one table "
                           "would average across them: keep a run directory per setting")


class RunDirectory:
    """One matrix's directory. Holding it takes an exclusive lock: a second matrix on it refuses to start.

    Ray workers open it with ``lock=False``: they only read and write the model cache and the cell logs.
    """

    def __init__(self, path: Path, lock: bool = True) -> None:
        self.path = Path(path)
        self.models = self.path / "models"
        self.logs = self.path / "logs"
        for folder in (self.path, self.models, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.results = self.path / RESULTS
        self._lock = None
        if lock:
            self._lock = open(self.path / ".lock", "w")
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._lock.close()
                raise BenchbdError(f"{self.path} is in use by another benchbd matrix; wait for it or pass another --out") from None
            self._repair_torn_tail()

    def close(self) -> None:
        if self._lock:
            self._lock.close()

    def _repair_torn_tail(self) -> None:
        """A crash mid-append can leave a last line without its newline: end it so the next append starts clean."""
        for path in (self.results, self.path / INVOCATIONS):
            if path.is_file() and path.stat().st_size:
                with open(path, "rb+") as handle:
                    handle.seek(-1, os.SEEK_END)
                    if handle.read(1) != b"\n":
                        handle.write(b"\n")

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.results)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record to ``results.jsonl``."""
        self._append_line(self.results, record)

    def log_invocation(self, invocation: dict[str, Any]) -> None:
        """Append one ``benchbd matrix`` on this directory to ``invocations.jsonl``: a table made over several
        invocations (more seeds later, a resume on another host) keeps every one's config and environment."""
        self._append_line(self.path / INVOCATIONS, invocation)

    @staticmethod
    def _append_line(path: Path, obj: dict[str, Any]) -> None:
        """Append ``obj`` as one JSON line with a single write, flushed to disk before returning."""
        line = (json.dumps(obj, sort_keys=True, default=str) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def has_model(self, key: str) -> bool:
        return (self.models / f"{key}.pt").is_file()

    def cached_model(self, key: str, model: torch.nn.Module) -> dict[str, Any] | None:
        """Load the cached weights for ``key`` into ``model`` and return what the attacks measured about that
        training (their ``stats()``, stored beside the weights); None if nothing is cached."""
        path = self.models / f"{key}.pt"
        if not path.is_file():
            return None
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return json.loads((self.models / f"{key}.json").read_text())

    def cache_model(self, key: str, model: torch.nn.Module, stats: dict[str, Any]) -> None:
        """Store a trained model's weights and its attacks' stats; the weights last, so that weights on disk
        always have their stats."""
        write_json_atomic(self.models / f"{key}.json", stats)
        path = self.models / f"{key}.pt"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
        os.replace(tmp, path)
