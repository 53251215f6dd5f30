"""The matrix: every (attack set, defense, seed) cell on one dataset, model and training profile.

A cell's data flow (design.md): attacks poison the training set (or replace the loss computation) → the trainer
trains the poisoned model → the defense judges its unit → metrics against ground truth → one record appended to
``results.jsonl``. The poisoned model of an (attack set, seed) is trained once, cached, and shared by every
defense. Re-running the same command skips the cells already finished.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import torch

from benchbd import params as plugin_params
from benchbd.attacks import Attack, DataPoisoningAttack, TrainingCodeAttack
from benchbd.data.images import ImageData, default_data_root
from benchbd.defenses import (
    Defense,
    ExampleContext,
    ExampleDefense,
    ModelContext,
    ModelDefense,
    ModelVerdict,
    TrainingRunContext,
    TrainingRunDefense,
)
from benchbd.errors import BenchbdError
from benchbd.harness.environment import environment
from benchbd.harness.metrics import attack_success_rate, clean_accuracy, detection_metrics, per_attack_auroc, target_rate
from benchbd.harness.poisoning import PoisonedTrainingSet, assign_targets, poison_training_set, trusted_clean_sample
from benchbd.harness.progress import Progress
from benchbd.harness.ray_executor import run_on_ray
from benchbd.harness.servers import build_servers
from benchbd.harness.results import RunDirectory
from benchbd.models import ImageClassifier
from benchbd.registry import Registry
from benchbd.training.profiles import TrainingProfile, get_profile
from benchbd.training.trainer import LossComputation, Trainer, TrainingRun, cross_entropy_loss, resolve_device

Mode = Literal["single", "multi", "both"]


#: What a matrix runs when no attacks or defenses are named and there is no GPU: a few minutes on 2 CPU cores.
#: With a GPU the default is every registered attack and defense.
CPU_DEFAULTS: dict[str, list[str]] = {"attacks": ["patch"], "defenses": ["none", "spectral"]}

#: Seeds of the clean models model-level defenses are judged on, offset from the cells' seeds.
CLEAN_MODEL_SEED = 10_000


@dataclass
class MatrixConfig:
    """Everything that defines a matrix. ``None`` for attacks or defenses is the default: all registered ones on
    a GPU, :data:`CPU_DEFAULTS` on a CPU; ``["all"]`` is every registered one."""

    dataset: str = "synth-signs"
    model: str | None = None
    attacks: list[str] | None = None
    defenses: list[str] | None = None
    seeds: int = 1
    mode: Mode = "both"
    profile: str = "fast"
    device: str = "auto"
    out: Path | None = None
    data_root: Path | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    cell_timeout: float | None = None
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    plugins: tuple[str, ...] = ()
    clean_models: int = 4


@dataclass(frozen=True)
class Group:
    """Cells sharing one poisoned model: the same attacks (in one training set) and seed."""

    attacks: tuple[str, ...]
    mode: Literal["single", "multi"]
    seed: int


@dataclass
class RunSummary:
    run_dir: Path
    done: int
    skipped: int
    failed: list[str]


def load_dataset(registry: Registry, spec: str, data_root: Path) -> ImageData:
    """Load ``NAME`` or ``NAME:ARGUMENT`` (``npz:PATH``)."""
    name, _, argument = spec.partition(":")
    dataset = registry.dataset(name)
    if dataset.takes_argument and not argument:
        raise BenchbdError(f"dataset '{name}' needs an argument: {name}:PATH")
    if argument and not dataset.takes_argument:
        raise BenchbdError(f"dataset '{name}' takes no argument (got '{spec}')")
    return dataset.load(argument or None, data_root)


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


def build_attack(registry: Registry, name: str, data: ImageData, values: dict[str, Any]) -> Attack:
    """The attack ``name`` with the paper's defaults for the dataset's family under the user's ``values``."""
    cls = registry.attack(name)
    attack = plugin_params.build(cls, {**cls.family_defaults.get(data.family, {}), **values})
    attack.check_dataset(data.num_classes, data.image_shape)
    return attack


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Matrix:
    """Plans and runs the cells of a :class:`MatrixConfig`."""

    def __init__(self, config: MatrixConfig, registry: Registry, progress: Progress) -> None:
        self.config = config
        self.registry = registry
        self.progress = progress
        if config.seeds < 1:
            raise BenchbdError(f"--seeds must be at least 1; got {config.seeds}")
        if config.executor not in ("local", "ray"):
            raise BenchbdError(f"executor must be local or ray; got {config.executor!r}")
        if config.mode not in ("single", "multi", "both"):
            raise BenchbdError(f"mode must be single, multi or both; got {config.mode!r}")
        if config.clean_models < 1:
            raise BenchbdError(f"--clean-models must be at least 1; got {config.clean_models}")
        if config.cell_timeout is not None and config.cell_timeout <= 0:
            raise BenchbdError(f"--cell-timeout must be positive; got {config.cell_timeout}")
        self.profile: TrainingProfile = get_profile(config.profile)
        self.model_name = config.model or self.profile.model
        self.model_spec = registry.model(self.model_name)
        self.device = resolve_device(config.device)
        self.attack_names = self._names("attacks", config.attacks)
        self.defense_names = self._names("defenses", config.defenses)
        unknown = sorted(set(config.params) - set(self.attack_names) - set(self.defense_names))
        if unknown:
            raise BenchbdError(f"parameters given for {', '.join(unknown)}, which are not in this matrix")
        self.data = load_dataset(registry, config.dataset, config.data_root or default_data_root())
        # Build every plugin once now, so that a bad parameter fails before any training.
        for name in self.attack_names:
            self._attack(name)
        self.defenses = {name: self._defense(name) for name in self.defense_names}
        self.groups = self._plan()
        self._trained_models: dict[str, ImageClassifier] = {}

    # -- planning -------------------------------------------------------------------------------------------
    def _names(self, category: Literal["attacks", "defenses"], names: list[str] | None) -> list[str]:
        if names is None:
            names = ["all"] if self.device.type == "cuda" else CPU_DEFAULTS[category]
        if names == ["all"]:
            return self.registry.names(category)
        if not names:
            raise BenchbdError(f"the list of {category} is empty")
        for name in names:
            self.registry.get(category, name)
        return list(dict.fromkeys(names))

    def _attack(self, name: str) -> Attack:
        return build_attack(self.registry, name, self.data, self.config.params.get(name, {}))

    def _defense(self, name: str) -> Defense:
        return plugin_params.build(self.registry.defense(name), self.config.params.get(name, {}))

    def _plan(self) -> list[Group]:
        mode = self.config.mode
        data_attacks = tuple(n for n in self.attack_names if self.registry.attack(n).kind == "data")
        if mode == "multi" and len(data_attacks) < 2:
            raise BenchbdError("--mode multi needs at least two data-poisoning attacks")
        groups = []
        for seed in range(self.config.seeds):
            if mode in ("single", "both"):
                groups += [Group((name,), "single", seed) for name in self.attack_names]
            if mode in ("multi", "both") and len(data_attacks) >= 2:
                groups.append(Group(data_attacks, "multi", seed))
        return groups

    def group_description(self, group: Group) -> dict[str, Any]:
        attacks = [self._attack(name) for name in group.attacks]
        return {
            "dataset": self.config.dataset,
            "model": self.model_name,
            "profile": self.profile.as_dict(),
            "mode": group.mode,
            "seed": group.seed,
            "attacks": [[a.name, plugin_params.as_dict(a)] for a in attacks],
        }

    def cell_hash(self, group: Group, defense: str) -> str:
        defense_params = plugin_params.as_dict(self.defenses[defense])
        return digest({**self.group_description(group), "defense": [defense, defense_params]})

    @property
    def total_cells(self) -> int:
        return len(self.groups) * len(self.defense_names)

    def default_out(self) -> Path:
        dataset = Path(self.config.dataset.partition(":")[2]).stem if ":" in self.config.dataset else self.config.dataset
        return Path("runs") / f"{dataset}-{self.model_name}-{self.profile.name}"

    # -- running --------------------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        run_dir = RunDirectory(self.config.out or self.default_out())
        try:
            return self._run(run_dir)
        finally:
            run_dir.close()

    def _run(self, run_dir: RunDirectory) -> RunSummary:
        run_dir.write_json("config.json", self._resolved_config())
        run_dir.write_json("environment.json", environment(self.device))
        finished = {r["config_hash"] for r in run_dir.records() if r.get("status") in ("ok", "not_applicable")}
        self.progress.start(self.total_cells)
        work = []
        for group in self.groups:
            pending = [d for d in self.defense_names if self.cell_hash(group, d) not in finished]
            self.progress.skip(len(self.defense_names) - len(pending))
            if pending:
                work.append((group, pending))
        skipped = self.total_cells - sum(len(pending) for _, pending in work)
        if self.config.executor == "ray":
            records = run_on_ray(self.config, run_dir.path, work, use_gpu=self.device.type == "cuda")
        else:
            records = (record for group, pending in work for record in self.run_group(run_dir, group, pending))
        done, failed = 0, []
        for record in records:
            run_dir.append(record)
            self.progress.cell_finished(record)
            done += 1
            if record["status"] == "error":
                failed.append(f"{'+'.join(record['attacks'])} / {record['defense']} / seed {record['seed']}: {record['error']}")
        self.progress.finish()
        return RunSummary(run_dir.path, done, skipped, failed)

    def _resolved_config(self) -> dict[str, Any]:
        return {
            "dataset": self.config.dataset,
            "model": self.model_name,
            "profile": self.profile.as_dict(),
            "attacks": {n: plugin_params.as_dict(self._attack(n)) for n in self.attack_names},
            "defenses": {n: plugin_params.as_dict(d) for n, d in self.defenses.items()},
            "seeds": self.config.seeds,
            "mode": self.config.mode,
            "device": str(self.device),
        }

    def _base_record(self, group: Group, defense: str) -> dict[str, Any]:
        return {
            "dataset": self.config.dataset,
            "model": self.model_name,
            "profile": self.profile.name,
            "mode": group.mode,
            "attacks": list(group.attacks),
            "defense": defense,
            "unit": self.defenses[defense].unit,
            "seed": group.seed,
            "params": {
                "attacks": dict(self.group_description(group)["attacks"]),
                "defense": plugin_params.as_dict(self.defenses[defense]),
            },
            "plugins": {
                "attacks": {name: self.registry.provenance("attacks", name) for name in group.attacks},
                "defense": self.registry.provenance("defenses", defense),
                "model": self.registry.provenance("models", self.model_name),
            },
            "status": "ok",
            "error": None,
            "config_hash": self.cell_hash(group, defense),
        }

    def _error_record(self, run_dir: RunDirectory, base: dict[str, Any], exc: BaseException, started: float) -> dict[str, Any]:
        log = run_dir.logs / f"{base['config_hash']}.log"
        log.write_text("".join(traceback.format_exception(exc)))
        summary = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {**base, "status": "error", "error": f"{type(exc).__name__}: {summary} (traceback: {log})", "seconds": time.perf_counter() - started}

    def run_group(self, run_dir: RunDirectory, group: Group, pending: list[str]) -> Iterator[dict[str, Any]]:
        """Yield each pending cell's record as soon as it is finished."""
        started = time.perf_counter()
        try:
            with time_limit(self.config.cell_timeout, "training the poisoned model"):
                state = self._poisoned_state(run_dir, group)
        except Exception as exc:  # noqa: BLE001 - a failing plugin fails its cells, not the matrix
            for name in pending:
                yield self._error_record(run_dir, self._base_record(group, name), exc, started)
            return
        for name in pending:
            cell_started = time.perf_counter()
            base = {**self._base_record(group, name), **state.summary}
            self.progress.cell_started(f"{'+'.join(group.attacks)} / {name} / seed {group.seed}")
            try:
                with time_limit(self.config.cell_timeout, f"defense {name}"):
                    result = self._judge(run_dir, state, self.defenses[name])
                yield {**base, **result, "seconds": time.perf_counter() - cell_started}
            except Exception as exc:  # noqa: BLE001
                yield self._error_record(run_dir, base, exc, cell_started)

    def _trainer(self, seed: int) -> Trainer:
        return Trainer(self.profile, self.device, seed, on_epoch=self.progress.epoch)

    def _fresh_model(self, seed: int) -> ImageClassifier:
        torch.manual_seed(seed)
        return self.model_spec.build(self.data.num_classes)

    def _poisoned_state(self, run_dir: RunDirectory, group: Group) -> PoisonedState:
        """Poison the training set and train (or load) the model every defense of the group judges."""
        self.progress.cell_started(f"{'+'.join(group.attacks)} / training the poisoned model / seed {group.seed}")
        description = self.group_description(group)
        rng = np.random.default_rng([group.seed, int(digest(description["attacks"]), 16) % 2**32])
        attacks = [self._attack(name) for name in group.attacks]
        assign_targets(attacks, self.data)
        for attack in attacks:
            attack.prepare(self.data.x_train, self.data.y_train, self.data.num_classes, rng)
        data_attacks = [a for a in attacks if isinstance(a, DataPoisoningAttack)]
        poisoned = poison_training_set(self.data, data_attacks, rng)
        loss = cross_entropy_loss
        for attack in attacks:
            if isinstance(attack, TrainingCodeAttack):
                loss = attack.loss_computation(loss)
        trainer = self._trainer(group.seed)
        model = self._fresh_model(group.seed)
        key = digest(description)
        train_started = time.perf_counter()
        self._load_or_fit(run_dir, key, model, trainer, poisoned.x, poisoned.y, loss, "poisoned model")
        summary = {
            "targets": {a.name: a.target for a in attacks},
            "poisoned_count": {a.name: int((poisoned.source == i).sum()) for i, a in enumerate(data_attacks)},
            "train_seconds": time.perf_counter() - train_started,
            "attack_stats": {a.name: a.stats() for a in attacks if a.stats()},
            "clean_acc": clean_accuracy(trainer, model, self.data),
            "asr": {a.name: attack_success_rate(trainer, model, self.data, a) for a in attacks},
            "clean_to_target": {a.name: target_rate(trainer, model, self.data, a) for a in attacks},
        }
        return PoisonedState(group, attacks, data_attacks, poisoned, model, trainer, rng, loss, summary)

    def _judge(self, run_dir: RunDirectory, state: PoisonedState, defense: Defense) -> dict[str, Any]:
        if isinstance(defense, ExampleDefense):
            return self._judge_examples(state, defense)
        if isinstance(defense, ModelDefense):
            return self._judge_models(run_dir, state, defense)
        if isinstance(defense, TrainingRunDefense):
            return self._judge_training_runs(state, defense)
        if defense.unit == "none":
            return {}
        raise BenchbdError(f"defense '{defense.name}' judges unit '{defense.unit}', which has no base class in benchbd.defenses")

    def _judge_examples(self, state: PoisonedState, defense: ExampleDefense) -> dict[str, Any]:
        if not state.data_attacks:
            return {"status": "not_applicable", "error": "no poisoned examples: the attack does not touch the training data"}
        context = ExampleContext(
            data=self.data,
            x_train=state.poisoned.x,
            y_train=state.poisoned.y,
            model=state.model,
            trainer=state.trainer,
            new_model=lambda: self._fresh_model(state.group.seed),
            features=state.features,
            attacks=state.attacks,
            expected_poison_fraction=sum(a.poison_fraction for a in state.data_attacks),
            rng=np.random.default_rng(state.rng.integers(2**32)),
            trusted_clean=trusted_clean_sample(state.poisoned, np.random.default_rng(state.rng.integers(2**32))),
            single_attack=state.group.mode == "single",
        )
        verdict = defense.score_examples(context)
        scores = np.asarray(verdict.scores, dtype=np.float64)
        flagged = np.asarray(verdict.flagged, dtype=bool)
        n = len(state.poisoned.y)
        if scores.shape != (n,) or flagged.shape != (n,):
            raise BenchbdError(f"{defense.name}: expected {n} scores and flags, got shapes {scores.shape} and {flagged.shape}")
        if not np.isfinite(scores).all():
            raise BenchbdError(f"{defense.name}: {int((~np.isfinite(scores)).sum())} scores are not finite")
        result: dict[str, Any] = detection_metrics(scores, flagged, state.poisoned.mask)
        if len(state.data_attacks) > 1:
            result["auroc_per_attack"] = {
                a.name: per_attack_auroc(scores, state.poisoned.source, i) for i, a in enumerate(state.data_attacks)
            }
        model = defense.mitigate(context, verdict)
        if model is None:
            kept = ~flagged
            model = self._fresh_model(state.group.seed)
            state.trainer.fit(model, state.poisoned.x[kept], state.poisoned.y[kept], label=f"retrain after {defense.name}")
        result["clean_acc_after"] = clean_accuracy(state.trainer, model, self.data)
        result["asr_after"] = {a.name: attack_success_rate(state.trainer, model, self.data, a) for a in state.attacks}
        return result

    # -- model-level defenses -------------------------------------------------------------------------------
    def _defender_clean(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Held-out clean images a model or training-run defender holds: up to 2,000 of the test split."""
        index = np.sort(rng.choice(len(self.data.y_test), size=min(2000, len(self.data.y_test)), replace=False))
        return self.data.x_test[index], self.data.y_test[index]

    def _load_or_fit(
        self, run_dir: RunDirectory, key: str, model: ImageClassifier, trainer: Trainer, x: np.ndarray, y: np.ndarray,
        loss: LossComputation, label: str,
    ) -> None:
        """Load the run's cached weights for ``key`` into ``model``, placed and in eval mode as ``trainer.fit`` leaves
        a model it trains, so a resumed run computes what the first one did; else train and cache it."""
        if run_dir.cached_model(key, model):
            trainer.place(model).eval()
        else:
            trainer.fit(model, x, y, label=label, loss_computation=loss)
            run_dir.cache_model(key, model)

    def _trained_model(
        self, run_dir: RunDirectory, description: dict[str, Any], seed: int, x: np.ndarray, y: np.ndarray, loss: LossComputation, label: str
    ) -> ImageClassifier:
        """Train (or load from the run's cache) a model of the cell's architecture; kept in memory for reuse."""
        key = digest(description)
        if key not in self._trained_models:
            model = self._fresh_model(seed)
            self._load_or_fit(run_dir, key, model, self._trainer(seed), x, y, loss, label)
            self._trained_models[key] = model
        return self._trained_models[key]

    def _judge_models(self, run_dir: RunDirectory, state: PoisonedState, defense: ModelDefense) -> dict[str, Any]:
        """The backdoored model of the cell and ``clean_models`` clean ones, each judged by the defense.

        A defense with its own :meth:`ModelDefense.training_loss` gets all of them trained with it.
        """
        own_loss = defense.training_loss(cross_entropy_loss)
        training = [defense.name, plugin_params.as_dict(defense)] if own_loss is not None else "profile"
        backdoored = state.model
        if own_loss is not None:
            poisoned_loss = defense.training_loss(state.loss)
            assert poisoned_loss is not None
            description = {**self.group_description(state.group), "training": training}
            backdoored = self._trained_model(
                run_dir, description, state.group.seed, state.poisoned.x, state.poisoned.y, poisoned_loss, f"backdoored model for {defense.name}"
            )
        clean = [
            self._trained_model(
                run_dir,
                {"dataset": self.config.dataset, "model": self.model_name, "profile": self.profile.as_dict(), "clean_model": i, "training": training},
                CLEAN_MODEL_SEED + i,
                self.data.x_train,
                self.data.y_train,
                own_loss or cross_entropy_loss,
                f"clean model {i + 1}",
            )
            for i in range(self.config.clean_models)
        ]
        rng = np.random.default_rng(state.rng.integers(2**32))
        clean_x, clean_y = self._defender_clean(rng)
        verdicts = []
        for model in [backdoored, *clean]:
            context = ModelContext(model, state.trainer, self.data.num_classes, clean_x, clean_y, np.random.default_rng(rng.integers(2**32)))
            verdicts.append(self._checked_verdict(defense, defense.inspect_model(context)))
        targets = {a.target for a in state.attacks}
        is_backdoored = np.array([True] + [False] * len(clean))
        result: dict[str, Any] = detection_metrics(
            np.array([v.score for v in verdicts]), np.array([v.flagged for v in verdicts]), is_backdoored
        )
        false_classes = len(set(verdicts[0].suspect_classes) - targets) + sum(len(v.suspect_classes) for v in verdicts[1:])
        result.update(
            target_found={a.name: a.target in verdicts[0].suspect_classes for a in state.attacks},
            class_fpr=false_classes / ((self.data.num_classes - len(targets)) + self.data.num_classes * len(clean)),
            model_scores={"backdoored": verdicts[0].score, "clean": [v.score for v in verdicts[1:]]},
            details=verdicts[0].details,
        )
        if own_loss is not None:
            result["judged_model"] = {
                "clean_acc": clean_accuracy(state.trainer, backdoored, self.data),
                "asr": {a.name: attack_success_rate(state.trainer, backdoored, self.data, a) for a in state.attacks},
            }
        return result

    @staticmethod
    def _checked_verdict(defense: ModelDefense, verdict: ModelVerdict) -> ModelVerdict:
        if not np.isfinite(verdict.score):
            raise BenchbdError(f"{defense.name}: the model score is not finite ({verdict.score})")
        return verdict

    # -- training-run defenses ------------------------------------------------------------------------------
    def _judge_training_runs(self, state: PoisonedState, defense: TrainingRunDefense) -> dict[str, Any]:
        """Simulated servers for the client's job (the cell's clean training), some running the cell's attacks."""
        rng = np.random.default_rng(state.rng.integers(2**32))
        seed = state.group.seed
        n_malicious = min(max(round(defense.servers * defense.malicious_fraction), 1), defense.servers - 1)
        malicious = rng.permutation(np.arange(defense.servers) < n_malicious)
        servers = build_servers(
            self.data, state.attacks, malicious, self._trainer, lambda: self._fresh_model(seed), defense.backdoor_lr_ratio, rng,
            job_seed=seed, variation=defense.replica_variation, kernel_noise=defense.kernel_noise,
        )
        job = TrainingRun(state.trainer, self._fresh_model(seed), self.data.x_train, self.data.y_train, label="client job")
        context = TrainingRunContext(
            servers=list(servers),
            initial=job.checkpoint(),
            total_steps=job.total_steps,
            new_model=lambda: self._fresh_model(seed),
            trainer=state.trainer,
            reference_x=self._defender_clean(rng)[0],
            rng=np.random.default_rng(rng.integers(2**32)),
        )
        verdict = defense.judge_servers(context)
        scores = np.asarray(verdict.scores, dtype=np.float64)
        flagged = np.asarray(verdict.flagged, dtype=bool)
        if scores.shape != (defense.servers,) or flagged.shape != (defense.servers,):
            raise BenchbdError(f"{defense.name}: expected {defense.servers} server scores and flags, got shapes {scores.shape} and {flagged.shape}")
        if not np.isfinite(scores).all():
            raise BenchbdError(f"{defense.name}: {int((~np.isfinite(scores)).sum())} server scores are not finite")
        return {
            **detection_metrics(scores, flagged, malicious),
            "servers": defense.servers,
            "malicious_servers": int(n_malicious),
            "extra_steps": int(verdict.extra_steps),
            "overhead_frac": verdict.extra_steps / (defense.servers * job.total_steps),
            "details": verdict.details,
        }


@dataclass
class PoisonedState:
    """One group's poisoned training set and trained model, shared by its defenses."""

    group: Group
    attacks: list[Attack]
    data_attacks: list[DataPoisoningAttack]
    poisoned: PoisonedTrainingSet
    model: ImageClassifier
    trainer: Trainer
    rng: np.random.Generator
    loss: LossComputation
    summary: dict[str, Any]
    _features: np.ndarray | None = None

    def features(self) -> np.ndarray:
        """Penultimate features of the poisoned training set, computed once for all defenses."""
        if self._features is None:
            self._features = self.trainer.features(self.model, self.poisoned.x)
        return self._features
