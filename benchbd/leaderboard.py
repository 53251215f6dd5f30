"""Leaderboard tables in the shape of the BaDLoss paper's tables 1-3, from a run's ``results.jsonl``.

- Table 1: one-attack detection AUROC, defense × attack (example-level defenses).
- Table 2: one-attack clean accuracy and attack success rate after filtering and retraining ("No Defense", the
  rows of the defenses of unit ``none``: the poisoned model). Table 2b: the ASR boosted at test time.
- Table 3a: multi-attack detection AUROC, over all poisoned examples and per attack.
- Table 3: multi-attack clean accuracy, ASR per attack and average ASR after retraining. Table 3b: boosted ASR.
- Table 4: model-level detection (docs/architecture.md's "model" unit): is the backdoored model flagged, is its target
  named, how many clean models and classes are flagged, AUROC of the scores over the model population.
- Table 5: training-run detection (the "training run" unit): malicious and benign servers flagged, overhead.

Which ASR (issue 15, item 5): Tables 2 and 3 show ``asr``, the trigger exactly as trained (BaDLoss section 5's
text); Tables 2b and 3b show ``asr_boosted``, the trigger of the attacks with a test-time boost applied with
``test_time=True`` (×2 for the blends and sinusoid, as BaDLoss's reference code's ``BOOSTING_RATIO``). A record
without ``code`` digests was made before both were measured: its ``asr`` is the boosted one, and its ASR cells say
so in a footnote.

Several seeds give the mean ± the half-width of its 95% t-interval over the seeds, with n. Cells that could not be computed say why in a footnote, and so does every cell of
an example-level defense that removed nothing (with the gate it recorded, e.g. Neural Cleanse's anomaly index), so
that its row is never silently equal to No Defense's. The header notes records made from several versions of a
plugin's code (their ``code`` digests) and records made before benchbd recorded them. A plugin that ran with
different parameters in one run directory (a matrix re-run there with other ``-P`` values) is shown once per
parameter set, named with the parameters that differ, e.g. ``rttd (backdoor_lr_ratio=0.1)``: such records are
different experiments, not seeds of one.

``--compare badloss`` adds, after these, Tables 1, 2 and 3 beside the values BaDLoss publishes
(:mod:`benchbd.papers`): ours, the paper's, and the difference. The paper's ASR comes from its reference code,
which boosts the blends and sinusoid ×2 at test time, so it is compared with ``asr_boosted`` where a record has it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text
from tabulate import tabulate

from benchbd.errors import BenchbdError
from benchbd.harness.metrics import FIXED_FPRS
from benchbd.harness.results import RESULTS, read_records
from benchbd.harness.servers import Simulation
from benchbd.harness.units import model as model_unit, training_run as training_run_unit
from benchbd.papers import PAPERS, Paper, PaperValue, paper_table
from benchbd.plots import write_heatmaps

#: The unit of the undefended baseline, benchbd's ``none`` or a third party's: its rows read the poisoned model.
NO_DEFENSE = "none"
#: What Tables 2 and 3 show, and what Tables 2b and 3b show.
AS_TRAINED = "ASR with the trigger as trained (BaDLoss section 5)"
#: How the tables name the cells trained on the clean training set (``--attacks none``).
NO_ATTACK_LABEL = "No attack"
#: The keys of a record's ``tpr_at_fpr``.
FIXED_FPR_LABELS = tuple(f"{limit:g}" for limit in FIXED_FPRS)
BOOSTED = "ASR boosted ×2 at test time, as BaDLoss's reference code (the attacks with a test-time boost)"
#: The footnote of an ASR cell with records made before benchbd recorded code digests.
OLD_ASR = "ASR of records made before benchbd recorded code digests: boosted ×2 at test time for the blends and sinusoid"


def made_before_code_digests(record: dict[str, Any]) -> bool:
    """Whether the record predates issue 15's protocol: no ``code`` digests, ``asr`` boosted at test time, and
    detection metrics counting the defender's trusted clean examples."""
    return "code" not in record


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def markdown_escape(text: str) -> str:
    """Escape text from plugins so that it cannot change the markdown around it."""
    return re.sub(r"([\\`*_{}\[\]<>#+!|~])", r"\\\1", str(text))


def _mean_interval(values: list[float], scale: float) -> str:
    """One value as it is; several (seeds) as the mean ± the half-width of its 95% t-interval, with n."""
    array = np.asarray(values, dtype=float) * scale
    if len(array) == 1:
        return f"{array[0]:.2f}"
    half = scipy.stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array))
    return f"{array.mean():.2f} ± {half:.2f} (n={len(array)})"


class _Cells:
    """Turns the records of one table cell (several seeds) into text, collecting footnotes for n/a and errors."""

    def __init__(self) -> None:
        self.notes: dict[str, int] = {}

    def mark(self, text: str) -> str:
        number = self.notes.setdefault(text, len(self.notes) + 1)
        return f"({number})"

    def text(
        self, records: list[dict[str, Any]], value: Callable[[dict[str, Any]], float | None], scale: float, *, asr: bool = False
    ) -> str:
        """The cell's mean ± 95% confidence interval; ``asr``: the value is read from the ``asr`` fields, boosted in old records."""
        if not records:
            return "–"
        bad = [r for r in records if r["status"] != "ok"]
        if bad:
            status = bad[0]["status"].replace("_", " ")
            label = "n/a" if status == "not applicable" else "error"
            return f"{label} {self.mark(status + ': ' + str(bad[0]['error']))}"
        values = [value(r) for r in records]
        if any(v is None for v in values):
            return f"n/a {self.mark('undefined: the cell has no poisoned or no clean examples')}"
        return " ".join([_mean_interval(values, scale), *self._caveats(records, asr)])

    def _caveats(self, records: list[dict[str, Any]], asr: bool) -> list[str]:
        """Marks for a defense that removed nothing, with the gate it recorded, and for old records' ASR."""
        marks = []
        empty = [r for r in records if r["unit"] == "example" and r.get("removed_frac") == 0]
        if empty:
            seeds = "" if len(empty) == len(records) else f" in {len(empty)} of {len(records)} seeds"
            gate = (empty[0].get("details") or {}).get("gate")
            marks.append(self.mark(f"flagged nothing{seeds}" + (f": {gate}" if gate else "")))
        if asr and any(made_before_code_digests(r) for r in records):
            marks.append(self.mark(OLD_ASR))
        return marks

    def footnotes(self) -> list[str]:
        return [f"({n}) {text}" for text, n in self.notes.items()]


def _ordered(values: pd.Series) -> list[str]:
    return list(dict.fromkeys(values))


#: Record fields that hold one value per attack, keyed by the attack's name.
PER_ATTACK_FIELDS = (
    "asr", "asr_after", "asr_boosted", "asr_boosted_after", "auroc_per_attack", "target_found", "targets", "clean_to_target",
    "robust_acc", "robust_acc_after", "der",
)


def label_configurations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with every plugin that appears under several parameter sets renamed per set, e.g.
    ``patch (ratio=0.05)`` and ``patch (ratio=0.1)``; other plugins keep their names. Records written before
    records carried their ``params`` are left as they are."""
    with_params = [r for r in records if "params" in r]
    defense_labels = _variant_labels((r["defense"], r["params"]["defense"]) for r in with_params)
    attack_labels = _variant_labels(pair for r in with_params for pair in r["params"]["attacks"].items())
    labelled = []
    for record in records:
        if "params" in record:
            params = record["params"]
            rename = {name: attack_labels.get((name, _params_key(p)), name) for name, p in params["attacks"].items()}
            record = {
                **record,
                "defense": defense_labels.get((record["defense"], _params_key(params["defense"])), record["defense"]),
                "attacks": [rename[name] for name in record["attacks"]],
                **{
                    key: {rename.get(name, name): value for name, value in record[key].items()}
                    for key in PER_ATTACK_FIELDS
                    if isinstance(record.get(key), dict)
                },
            }
        labelled.append(record)
    return labelled


def _params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _variant_labels(pairs: Iterable[tuple[str, dict[str, Any]]]) -> dict[tuple[str, str], str]:
    """{(plugin name, parameter key): label} for the plugins seen with more than one parameter set."""
    variants: dict[str, dict[str, dict[str, Any]]] = {}
    for name, params in pairs:
        variants.setdefault(name, {})[_params_key(params)] = params
    labels = {}
    for name, by_key in variants.items():
        if len(by_key) < 2:
            continue
        keys = sorted({key for params in by_key.values() for key in params})
        differing = [key for key in keys if len({json.dumps(p.get(key), default=str) for p in by_key.values()}) > 1]
        for key, params in by_key.items():
            labels[(name, key)] = f"{name} ({', '.join(f'{k}={params.get(k)}' for k in differing)})"
    return labels


def build_tables(records: list[dict[str, Any]]) -> list[Table]:
    """The leaderboard tables for the records of one run (records as :func:`label_configurations` returns)."""
    if not records:
        raise BenchbdError("no results to render: the results file has no finished cells")
    frame = pd.DataFrame(records).assign(record=records)
    tables: list[Table] = []
    attacked = frame["attacks"].map(len) > 0
    if not attacked.all():
        tables += _no_attack_tables(frame[~attacked])
    frame_attacked = frame[attacked]
    single = frame_attacked[frame_attacked["mode"] == "single"]
    multi = frame_attacked[frame_attacked["mode"] == "multi"]
    if not single.empty:
        tables += _single_attack_tables(single)
    if not multi.empty:
        tables += _multi_attack_tables(multi)
    tables += _detection_tables(frame)
    return [table for table in tables if table.rows]  # e.g. no mitigation table for a run of training-run defenses


#: The units whose tables list detection per (defense, attack set); each unit module names its title and columns.
DETECTION_UNITS = {"model": model_unit, "training-run": training_run_unit}
SIMULATION_DEFAULTS = dataclasses.asdict(Simulation())


def _attack_set(record: dict[str, Any]) -> str:
    """The attacks of a record, with the training-run unit's threat model where it is not the default
    (``patch (backdoor_lr_ratio=0.1)``): a different attacker, not a variant of the defense."""
    simulation = record.get("params", {}).get("simulation", {})
    changed = [f"{key}={value}" for key, value in simulation.items() if SIMULATION_DEFAULTS.get(key) != value]
    attacks = "+".join(record["attacks"]) or NO_ATTACK_LABEL
    return f"{attacks} ({', '.join(changed)})" if changed else attacks


def _detection_tables(frame: pd.DataFrame) -> list[Table]:
    """One row per (defense, attack set) for the model and training-run units, both modes together."""
    frame = frame.assign(attack_set=frame["record"].map(_attack_set))
    tables = []
    for unit, module in DETECTION_UNITS.items():
        title, columns = module.TITLE, module.COLUMNS
        selected = frame[frame["unit"] == unit]
        if selected.empty:
            continue
        cells = _Cells()
        rows = [
            [name, attack_set] + [cells.text(_select(selected, defense=name, attack_set=attack_set), value, scale) for _, value, scale in columns]
            for name in _ordered(selected["defense"])
            for attack_set in _ordered(selected["attack_set"])
        ]
        tables.append(Table(title, ["Defense", "Attacks", *(header for header, _, _ in columns)], rows, cells.footnotes()))
    return tables


def _select(frame: pd.DataFrame, **where: Any) -> list[dict[str, Any]]:
    mask = np.ones(len(frame), dtype=bool)
    for key, value in where.items():
        mask &= (frame[key] == value).to_numpy()
    return frame.loc[mask, "record"].tolist()


def _single_attack_tables(frame: pd.DataFrame) -> list[Table]:
    frame = frame.assign(attack=frame["attacks"].map(lambda a: a[0]))
    attacks = _ordered(frame["attack"])
    example_defenses = _ordered(frame.loc[frame["unit"] == "example", "defense"])
    tables = []
    if example_defenses:
        cells = _Cells()
        rows = [
            [name] + [cells.text(_select(frame, defense=name, attack=a), lambda r: r["auroc"], 1) for a in attacks]
            for name in example_defenses
        ]
        tables.append(Table("Table 1: one-attack detection AUROC", ["Defense", *attacks], rows, cells.footnotes()))
        cells = _Cells()
        rows = [
            [name] + [cells.text(_select(frame, defense=name, attack=a), lambda r, at=at: (r.get("tpr_at_fpr") or {}).get(at), 100)
                      for a in attacks for at in FIXED_FPR_LABELS]
            for name in example_defenses
        ]
        columns = ["Defense", *(f"{a} @{float(at):.0%}" for a in attacks for at in FIXED_FPR_LABELS)]
        tables.append(Table("Table 1b: one-attack TPR (%) at a fixed FPR of 1% and 5%, from the scores", columns, rows, cells.footnotes()))
    cells = _Cells()
    rows = []
    for name, label in _mitigation_rows(frame):
        selected = {a: _select(frame, defense=name, attack=a) for a in attacks}
        rows.append(
            [label]
            + [cells.text(selected[a], _after("clean_acc"), 100) for a in attacks]
            + [cells.text(selected[a], _asr_of(a, "asr"), 100, asr=True) for a in attacks]
        )
    columns = ["Defense", *(f"CA {a}" for a in attacks), *(f"ASR {a}" for a in attacks)]
    title = f"Table 2: one-attack clean accuracy and attack success rate (%) after retraining; {AS_TRAINED}"
    tables.append(Table(title, columns, rows, cells.footnotes()))
    tables += _effectiveness_table("Table 2c: one-attack", frame, attacks, lambda name, a: _select(frame, defense=name, attack=a))
    title = "Table 2b: one-attack attack success rate (%) after retraining"
    return tables + _boosted_tables(title, frame, attacks, lambda name, a: _select(frame, defense=name, attack=a))


def _multi_attack_tables(frame: pd.DataFrame) -> list[Table]:
    attacks = _ordered(a for combo in frame["attacks"] for a in combo)
    tables = []
    example_defenses = _ordered(frame.loc[frame["unit"] == "example", "defense"])
    if example_defenses:
        cells = _Cells()
        rows = [
            [name, cells.text(_select(frame, defense=name), lambda r: r["auroc"], 1)]
            + [cells.text(_select(frame, defense=name), lambda r, a=a: r["auroc_per_attack"][a], 1) for a in attacks]
            for name in example_defenses
        ]
        title = "Table 3a: multi-attack detection AUROC, all poisoned examples and each attack's against the clean ones"
        tables.append(Table(title, ["Defense", "All", *attacks], rows, cells.footnotes()))
    cells = _Cells()
    rows = []
    asr = _after("asr")
    for name, label in _mitigation_rows(frame):
        selected = _select(frame, defense=name)
        rows.append(
            [label, cells.text(selected, _after("clean_acc"), 100)]
            + [cells.text(selected, _asr_of(a, "asr"), 100, asr=True) for a in attacks]
            + [cells.text(selected, lambda r: float(np.mean(list(asr(r).values()))), 100, asr=True)]
        )
    columns = ["Defense", "Clean Acc.", *(f"ASR {a}" for a in attacks), "Avg. ASR"]
    title = f"Table 3: multi-attack clean accuracy and attack success rate (%) after retraining; {AS_TRAINED}"
    tables.append(Table(title, columns, rows, cells.footnotes()))
    tables += _effectiveness_table("Table 3c: multi-attack", frame, attacks, lambda name, a: _select(frame, defense=name))
    title = "Table 3b: multi-attack attack success rate (%) after retraining"
    return tables + _boosted_tables(title, frame, attacks, lambda name, a: _select(frame, defense=name))


def _effectiveness_table(
    prefix: str, frame: pd.DataFrame, attacks: list[str], cell: Callable[[str, str], list[dict[str, Any]]]
) -> list[Table]:
    """DER per attack (example-level defenses) and robust accuracy after retraining, both with the trigger as
    trained (:func:`benchbd.harness.metrics.defense_effectiveness`, :func:`~benchbd.harness.metrics.robust_accuracy`);
    none for records that have neither (made before benchbd measured them)."""
    if not any("der" in r or "robust_acc" in r for r in frame["record"]):
        return []
    cells = _Cells()
    rows = []
    for name, label in _mitigation_rows(frame):
        example = name in set(frame.loc[frame["unit"] == "example", "defense"])
        rows.append(
            [label]
            + [cells.text(cell(name, a), lambda r, a=a: r.get("der", {}).get(a), 1) if example else "–" for a in attacks]
            + [cells.text(cell(name, a), lambda r, a=a: r.get(_after_field(r, "robust_acc"), {}).get(a), 100) for a in attacks]
        )
    columns = ["Defense", *(f"DER {a}" for a in attacks), *(f"R-Acc {a}" for a in attacks)]
    title = (f"{prefix} defense effectiveness rating (DER: 0.5 no change, 1 backdoor gone at no accuracy cost) and "
             f"robust accuracy (%, triggered inputs kept at their true label) after retraining; trigger as trained")
    return [Table(title, columns, rows, cells.footnotes())]


def _no_attack_tables(frame: pd.DataFrame) -> list[Table]:
    """What each example-level defense costs when nothing is poisoned (the clean training set, ``--attacks
    none``): the examples it removed for nothing and the clean accuracy left after retraining."""
    cells = _Cells()
    rows = []
    for name, label in _mitigation_rows(frame):
        selected = _select(frame, defense=name)
        undefended = label.startswith("No Defense")
        removed = "–" if undefended else cells.text(selected, lambda r: r["removed_frac"], 100)
        lost = "–" if undefended else cells.text(selected, lambda r: r["clean_acc"] - r["clean_acc_after"], 100)
        rows.append([label, removed, cells.text(selected, _after("clean_acc"), 100), lost])
    if not rows:
        return []
    title = (f"Table 0: {NO_ATTACK_LABEL} (clean training set): examples removed for nothing, clean accuracy after "
             "retraining, and the clean accuracy lost to the defense (%)")
    return [Table(title, ["Defense", "Removed", "Clean Acc.", "Clean Acc. lost"], rows, cells.footnotes())]


def _boosted_tables(
    title: str, frame: pd.DataFrame, attacks: list[str], cell: Callable[[str, str], list[dict[str, Any]]]
) -> list[Table]:
    """The table of the boosted ASR (``asr_boosted``) of the attacks that have one, the records of each cell given
    by ``cell(defense, attack)``; no table when no record has a boosted ASR."""
    held = {a for r in frame["record"] for a in r.get("asr_boosted", {})}
    boosted = [a for a in attacks if a in held]
    if not boosted:
        return []
    cells = _Cells()
    rows = [
        [label] + [cells.text(_with_boosted(cell(name, a), a), _asr_of(a, "asr_boosted"), 100) for a in boosted]
        for name, label in _mitigation_rows(frame)
    ]
    return [Table(f"{title}; {BOOSTED}", ["Defense", *(f"ASR {a}" for a in boosted)], rows, cells.footnotes())]


def _mitigation_rows(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(defense, row label) of the mitigation tables: the baselines (unit ``none``) first as "No Defense", named
    when there are several, then every defense that filters and retrains."""
    baselines = _ordered(frame.loc[frame["unit"] == NO_DEFENSE, "defense"])
    defenses = _ordered(frame.loc[frame["unit"] == "example", "defense"])
    labels = ["No Defense"] if len(baselines) == 1 else [f"No Defense ({name})" for name in baselines]
    return [*zip(baselines, labels), *((name, name) for name in defenses)]


def _after_field(record: dict[str, Any], field: str) -> str:
    """The record's field holding ``field`` after mitigation: a baseline's is the poisoned model's own ``field``."""
    return field if record["unit"] == NO_DEFENSE else f"{field}_after"


def _after(field: str) -> Callable[[dict[str, Any]], Any]:
    """A record's ``field`` after mitigation (``clean_acc``, ``asr``), as :func:`_after_field` finds it."""
    return lambda r: r[_after_field(r, field)]


def _asr_of(attack: str, field: str) -> Callable[[dict[str, Any]], float]:
    """One attack's ASR after mitigation, from ``field`` (``asr`` or ``asr_boosted``)."""
    return lambda r: r[_after_field(r, field)].get(attack)


def _with_boosted(records: list[dict[str, Any]], attack: str) -> list[dict[str, Any]]:
    """The records that have the attack's boosted ASR, and those that failed (their cell says why)."""
    return [r for r in records if r["status"] != "ok" or attack in r.get(_after_field(r, "asr_boosted"), {})]


def to_markdown(tables: list[Table], header: str = "") -> str:
    parts = [header] if header else []
    for table in tables:
        parts.append(f"### {markdown_escape(table.title)}\n")
        rows = [[markdown_escape(cell) for cell in row] for row in table.rows]
        parts.append(tabulate(rows, headers=[markdown_escape(c) for c in table.columns], tablefmt="pipe", disable_numparse=True))
        if table.notes:
            parts.append("\n" + "\n".join(f"{markdown_escape(note)}  " for note in table.notes))
        parts.append("")
    return "\n".join(parts) + "\n"


def _rich_table(title: str, columns: list[str], rows: list[list[str]]) -> RichTable:
    rich_table = RichTable(title=title, title_justify="left")
    for index, column in enumerate(columns):
        rich_table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        rich_table.add_row(*(Text(cell) for cell in row))
    return rich_table


def print_tables(tables: list[Table], console: Console) -> None:
    """Print the tables; one too wide for the terminal (many attacks, few defenses) is printed transposed, a line
    per column, instead of squeezed into unreadable columns."""
    for table in tables:
        # Each column takes its widest cell, a space either side and a border; then the closing border.
        width = sum(max(len(cell) for cell in column) + 3 for column in zip(table.columns, *table.rows)) + 1
        if width <= console.width:
            console.print(_rich_table(table.title, table.columns, table.rows))
        else:
            header, *lines = [list(line) for line in zip(table.columns, *table.rows)]
            console.print(_rich_table(table.title, header, lines))
        for note in table.notes:
            console.print(note, markup=False, highlight=False)


def run_header(records: list[dict[str, Any]]) -> str:
    """The run's dataset, model, profile and seed count, the distributions its plugins came from (records written
    before benchbd recorded them have none), and the notes of :func:`code_notes`. ``records`` as read, not
    relabelled: their ``code`` digests are keyed by the plugins' own names."""
    first = records[0]
    seeds = sorted({r["seed"] for r in records})
    distributions = sorted({
        source
        for r in records if "plugins" in r
        for source in (*r["plugins"]["attacks"].values(), r["plugins"]["defense"], r["plugins"]["model"])
    })
    plugins = [f"Plugins from {', '.join(markdown_escape(d) for d in distributions)}."] if distributions else []
    summary = (
        f"Dataset {markdown_escape(first['dataset'])}, model {markdown_escape(first['model'])}, "
        f"profile {markdown_escape(first['profile'])}, seeds {len(seeds)}; with several, mean ± 95% t-interval half-width (n seeds)."
    )
    return "\n\n".join(["# benchbd leaderboard", summary, *plugins, *code_notes(records)]) + "\n"


def code_notes(records: list[dict[str, Any]]) -> list[str]:
    """A note for benchbd and for every plugin whose records come from several versions of its code (several
    digests of its source, issue 15 item 4), and one for the records made before benchbd recorded digests."""
    digests: dict[str, set[str]] = {}
    for r in records:
        if made_before_code_digests(r):
            continue
        for name, digest in _code_versions(r):
            digests.setdefault(name, set()).add(digest)
    notes = [f"Records of {markdown_escape(name)} come from {len(d)} versions of its code." for name, d in digests.items()
             if len(d) > 1]
    old = [r for r in records if made_before_code_digests(r)]
    if old:
        which = "These records were" if len(old) == len(records) else f"{len(old)} of {len(records)} records were"
        counted = any(r["unit"] == "example" for r in old)  # only example-level records have these metrics
        detection = "detection AUROC, TPR and FPR counted the defender's trusted clean examples; " if counted else ""
        notes.append(f"{which} made before benchbd recorded code digests (old protocol: {detection}ASR boosted ×2 at "
                     "test time for the blends and sinusoid).")
    return notes


def _code_versions(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(plugin, digest) of each entry of the record's ``code``, named as ``benchbd``, ``attack patch``,
    ``defense spectral``, ``model small-cnn``, ``dataset gtsrb``: the kind with the record's plugin of that kind."""
    versions = []
    for kind, value in record["code"].items():
        if kind == "attacks":
            versions += [(f"attack {name}", digest) for name, digest in value.items()]
        else:
            versions.append((f"{kind} {record[kind]}" if kind in record else kind, value))
    return versions


#: The columns of a comparison table: our cell as the leaderboard shows it, the paper's value, and their difference.
COMPARED_COLUMNS = ["Defense", "Column", "Ours", "Paper", "Δ"]


def comparison_tables(records: list[dict[str, Any]], read: list[dict[str, Any]], name: str) -> list[Table]:
    """Tables 1, 2 and 3 of the run beside those of the paper ``name`` (:mod:`benchbd.papers`), for each dataset
    family the paper reports: a row per defense and leaderboard column with ours (as the leaderboard's cell), the
    paper's value and Δ = our mean − the paper's, in the table's units; blank where the paper has no value or the
    run no record. ``records`` as :func:`label_configurations` returns them, ``read`` as read (the plugins' own
    names, which the paper's values are keyed by)."""
    values = paper_table(name)
    paper = PAPERS[name]
    plugin = {labelled["defense"]: r["defense"] for labelled, r in zip(records, read)}
    plugin |= {label: attack for labelled, r in zip(records, read) for label, attack in zip(labelled["attacks"], r["attacks"])}
    families = sorted({v.dataset for v in values})
    family = [r.get("family", r["dataset"]) for r in records]
    tables = []
    for dataset in families:
        matched = [r for r, f in zip(records, family) if f == dataset]
        if matched:
            tables += _family_comparison(matched, plugin, paper, [v for v in values if v.dataset == dataset])
    unmatched = [r for r, f in zip(records, family) if f not in families]
    if not unmatched:
        return tables
    seen = sorted({f"{r['dataset']} (family {r['family']})" if "family" in r else f"{r['dataset']} (no family recorded)"
                   for r in unmatched})
    note = (f"{len(unmatched)} of {len(records)} records not compared with {paper.title}: dataset {', '.join(seen)} "
            f"is none of the paper's ({', '.join(families)}).")
    if not tables:
        return [Table(f"Compared with {paper.title}: nothing to compare", [], [], [note])]
    tables[0].notes.append(note)
    return tables


def _family_comparison(
    records: list[dict[str, Any]], plugin: dict[str, str], paper: Paper, values: list[PaperValue]
) -> list[Table]:
    """The comparison tables of one dataset family's records with the paper's values for that family."""
    value_of = {(v.table, v.defense, v.attack, v.metric): v.value for v in values}
    frame = pd.DataFrame(records).assign(record=records)
    baselines = set(frame.loc[frame["unit"] == NO_DEFENSE, "defense"])

    def defense_of(name: str) -> str:
        """The paper's row of a defense: its plugin, or "none" (No Defense) for any baseline."""
        return NO_DEFENSE if name in baselines else plugin[name]

    family = values[0].dataset
    seeds = len({r["seed"] for r in records})
    setting = (
        f"Paper: {paper.title}, {paper.setting}. Ours: dataset {', '.join(sorted({r['dataset'] for r in records}))} "
        f"(family {family}), model {', '.join(sorted({r['model'] for r in records}))}, profile "
        f"{', '.join(sorted({r['profile'] for r in records}))}, {seeds} seed(s), mean compared: not a replication "
        "where the settings differ."
    )
    versus = f"beside {paper.title}'s, {family}"
    asr = "ASR boosted ×2 at test time for the attacks with a boost; Δ = ours − paper"
    tables = []
    single = frame[frame["mode"] == "single"]
    if not single.empty:
        single = single.assign(attack=single["attacks"].map(lambda a: a[0]))
        attacks = _ordered(single["attack"])
        cells = _Cells()
        rows = [
            row
            for name in _ordered(single.loc[single["unit"] == "example", "defense"])
            for a in attacks
            for row in _compared_row(cells, name, a, _select(single, defense=name, attack=a), lambda r: r["auroc"], 1,
                                     value_of.get((1, plugin[name], plugin[a], "auroc")))
        ]
        if rows:
            title = f"Table 1 {versus}: one-attack detection AUROC; Δ = ours − paper"
            tables.append(Table(title, COMPARED_COLUMNS, rows, [setting, *cells.footnotes()]))
        cells = _Cells()
        rows = []
        for name, label in _mitigation_rows(single):
            selected = {a: _select(single, defense=name, attack=a) for a in attacks}
            for a in attacks:
                rows += _compared_row(cells, label, f"CA {a}", selected[a], _after("clean_acc"), 100,
                                      value_of.get((2, defense_of(name), plugin[a], "clean_acc")))
            for a in attacks:
                rows += _compared_row(cells, label, f"ASR {a}", selected[a], _compared_asr(a), 100,
                                      value_of.get((2, defense_of(name), plugin[a], "asr")), asr=True)
        title = f"Table 2 {versus}: one-attack clean accuracy and attack success rate (%) after retraining; {asr}"
        tables.append(Table(title, COMPARED_COLUMNS, rows, [setting, _asr_note(records, attacks), *cells.footnotes()]))
    multi = frame[frame["mode"] == "multi"]
    if not multi.empty:
        attacks = _ordered(a for combo in multi["attacks"] for a in combo)
        paper_attacks = {v.attack for v in values if v.table == 3 and v.metric == "asr"}
        same_attacks = {plugin[a] for a in attacks} == paper_attacks
        cells = _Cells()
        rows = []
        for name, label in _mitigation_rows(multi):
            selected = _select(multi, defense=name)
            rows += _compared_row(cells, label, "Clean Acc.", selected, _after("clean_acc"), 100,
                                  value_of.get((3, defense_of(name), None, "clean_acc")))
            for a in attacks:
                rows += _compared_row(cells, label, f"ASR {a}", selected, _compared_asr(a), 100,
                                      value_of.get((3, defense_of(name), plugin[a], "asr")), asr=True)
            average = value_of.get((3, defense_of(name), None, "avg_asr")) if same_attacks else None
            rows += _compared_row(cells, label, "Avg. ASR", selected,
                                  lambda r: float(np.mean([_compared_asr(a)(r) for a in r["attacks"]])), 100, average, asr=True)
        notes = [setting, _asr_note(records, attacks)]
        if not same_attacks:
            notes.append(f"The paper's Avg. ASR is over its six attacks ({', '.join(sorted(paper_attacks))}); this run's "
                         f"multi-attack cell has {', '.join(attacks)}: not compared.")
        title = f"Table 3 {versus}: multi-attack clean accuracy and attack success rate (%) after retraining; {asr}"
        tables.append(Table(title, COMPARED_COLUMNS, rows, [*notes, *cells.footnotes()]))
    return tables


def _compared_row(
    cells: _Cells, defense: str, column: str, records: list[dict[str, Any]], value: Callable[[dict[str, Any]], Any],
    scale: float, paper: float | None, *, asr: bool = False
) -> list[list[str]]:
    """[[defense, column, ours, paper, Δ]], Δ from the mean over seeds; [] where neither we nor the paper have it."""
    if not records and paper is None:
        return []
    ours = cells.text(records, value, scale, asr=asr) if records else ""
    values = [value(r) for r in records] if records and all(r["status"] == "ok" for r in records) else []
    mean = float(np.mean(values)) * scale if values and None not in values else None
    paper_text = "" if paper is None else f"{paper:.2f}"
    delta = "" if paper is None or mean is None else f"{mean - paper:+.2f}"
    return [[defense, column, ours, paper_text, delta]]


def _compared_asr(attack: str) -> Callable[[dict[str, Any]], float | None]:
    """One attack's ASR after mitigation as the paper's figures measure it: boosted where the record has the
    attack's boosted ASR, else as trained."""
    def value(record: dict[str, Any]) -> float | None:
        boosted = record.get(_after_field(record, "asr_boosted"), {})
        return boosted[attack] if attack in boosted else record[_after_field(record, "asr")].get(attack)
    return value


def _asr_note(records: list[dict[str, Any]], attacks: list[str]) -> str:
    """Which of the table's attacks are compared with their boosted ASR and which with the ASR as trained."""
    held = {a for r in records for a in r.get("asr_boosted", {})}
    boosted = [a for a in attacks if a in held] or ["none"]
    plain = [a for a in attacks if a not in held] or ["none"]
    return (f"ASR compared with the paper's: ours boosted ×2 at test time (asr_boosted) for {', '.join(boosted)}; "
            f"as trained (asr) for {', '.join(plain)}. The paper's ASR comes from BaDLoss's reference code, which "
            "boosts the blends and sinusoid ×2 at test time (BOOSTING_RATIO).")


def render_run(run_dir: Path, output: Path | None = None, compare: str | None = None) -> list[Table]:
    """Render the run directory's tables to markdown at ``output`` (default RUN_DIR/leaderboard.md), with
    heatmap PNGs beside it, linked from the markdown, and after them the tables beside the paper ``compare``'s
    (:func:`comparison_tables`). Returns the tables for the terminal."""
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        raise BenchbdError(f"{run_dir}: no {RESULTS} here (is it a benchbd run directory?)")
    output = Path(output) if output else Path(run_dir) / "leaderboard.md"
    read = read_records(path)
    records = label_configurations(read)
    tables = build_tables(records)
    compared = comparison_tables(records, read, compare) if compare else []
    old = "; old records: boosted ×2" if any(made_before_code_digests(r) for r in records) else ""
    heatmaps = write_heatmaps(records, output.parent, asr_label=f"trigger as trained{old}")
    links = "".join(f"![{name}]({png.name})\n" for name, png in heatmaps.items())
    beside = to_markdown(compared, f"## Beside {PAPERS[compare].title}\n") if compare else ""
    output.write_text(to_markdown(tables, run_header(read)) + beside + ("\n" + links if links else ""))
    return tables + compared
