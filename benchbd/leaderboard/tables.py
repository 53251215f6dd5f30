"""The leaderboard's tables from a run's records: Tables 0-3 (example level, in the shape of BaDLoss's), and the
model and training-run units' Tables 4 and 5."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from benchbd.errors import BenchbdError
from benchbd.harness.records import after_field
from benchbd.harness.servers import Simulation
from benchbd.leaderboard.cells import (
    AS_TRAINED, BOOSTED, FIXED_FPR_LABELS, NO_ATTACK_LABEL, OLD_DETECTION, OLD_FPR, Cells, Table, after, asr_of,
    count_range, mitigation_rows, multi_attack_sets, ordered, select, with_boosted,
)


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
    alone = attack_targets(single)
    if not single.empty:
        tables += _single_attack_tables(single, alone)
    for heading, multi in multi_attack_sets(frame_attacked):
        tables += _multi_attack_tables(multi, heading, alone)
    tables += _detection_tables(frame)
    return [table for table in tables if table.rows]  # e.g. no mitigation table for a run of training-run defenses


def mean_of_known(values: Any) -> float | None:
    """The mean of the values that are not None (a target the defense did not examine); None if there are none."""
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


#: The title of Tables 1c and 3d, the examples a defense flagged (which the harness removes before retraining), and
#: their rates with the footnote of old records: trusted examples are clean, so only the FPR counted them.
REMOVED_TITLE = ("{prefix} examples flagged (%): TPR the poisoned ones, FPR the clean ones, of the examples judged (the "
                 "trusted ones never are); the harness removes them and retrains, unless the defense repairs the model itself")
REMOVED_RATES = (("tpr", None), ("fpr", OLD_FPR))
def too_few_for_fpr(judged: str) -> str:
    """Why a fixed FPR's TPR can be undefined (harness/metrics.py, tpr_at_fpr), of clean ``judged`` (examples,
    models)."""
    return f"too few clean {judged} judged to measure that FPR (100 for 1%, 20 for 5%), or nothing to detect"


#: Table 4's columns, the model unit's (harness/units/model.py) record fields: header, the record's value, scale,
#: and why the value can be undefined.
MODEL_COLUMNS = [
    ("Backdoored flagged", lambda r: r["tpr"], 100, "no backdoored model judged (no attack, or the defense could not judge it)"),
    ("Target named", lambda r: mean_of_known(r["target_found"].values()), 100, "no target among the classes the defense examined"),
    ("Clean models flagged", lambda r: r["fpr"], 100, "no clean model judged"),
    ("Classes wrongly named", lambda r: r["class_fpr"], 100, "no class examined"),
    ("AUROC", lambda r: r["auroc"], 1, "no backdoored or no clean model judged"),
    ("TPR @1% FPR", lambda r: (r.get("tpr_at_fpr") or {}).get("0.01"), 100, too_few_for_fpr("models")),
    ("TPR @5% FPR", lambda r: (r.get("tpr_at_fpr") or {}).get("0.05"), 100, too_few_for_fpr("models")),
    ("Judged CA", lambda r: r.get("judged_model", r)["clean_acc"], 100, None),
    ("Judged ASR", lambda r: float(np.mean(list(r.get("judged_model", r)["asr"].values()))) if r["asr"] else None, 100,
     "no attack"),
]
MODEL_TITLE = ("Table 4: model-level detection (%, AUROC as a fraction; AUROC and TPR at a fixed FPR over the backdoored "
               "and the clean models); the backdoored model judged: its clean accuracy and ASR as trained (a defense "
               "that trains its own models, AEGIS, judges those)")


def model_population_notes(records: list[dict[str, Any]]) -> list[str]:
    """What Table 4's figures are over: how many clean models each cell judged beside its backdoored one, what
    "flagged" and "Classes wrongly named" count."""
    counts = {len(r["model_scores"]["clean"]) for r in records if r.get("model_scores")}
    if not counts:
        return []
    return [f"Each cell judges its backdoored model and {count_range(counts)} clean models of the same architecture and profile "
            "(--clean-models), per seed. \"Flagged\" is the defense's own decision; the AUROC ranks its scores over "
            "those models; \"Classes wrongly named\" is the share of the classes the defense examined that it named as a "
            "target wrongly: any class of a clean model, the backdoored model's other than its target."]


#: Table 5's columns, the training-run unit's (harness/units/training_run.py) record fields.
TRAINING_RUN_COLUMNS = [
    ("Malicious flagged", lambda r: r["tpr"], 100, "no malicious server"),
    ("Benign flagged", lambda r: r["fpr"], 100, "no benign server"),
    ("AUROC", lambda r: r["auroc"], 1, "no malicious or no benign server"),
    ("Overhead", lambda r: r["overhead_frac"], 100, None),
]
TRAINING_RUN_TITLE = ("Table 5: training-run detection (% of servers, AUROC as a fraction; overhead in % of the servers' "
                      "training steps)")


#: The units whose tables list detection per (defense, attack set): their titles and columns.
DETECTION_UNITS = {"model": (MODEL_TITLE, MODEL_COLUMNS), "training-run": (TRAINING_RUN_TITLE, TRAINING_RUN_COLUMNS)}
SIMULATION_DEFAULTS = dataclasses.asdict(Simulation())


def attack_targets(frame: pd.DataFrame) -> dict[str, list[int]]:
    """Each attack's target classes in the frame's records (one, unless the records differ)."""
    targets: dict[str, set[int]] = {}
    for record in frame["record"]:
        for attack, target in record.get("targets", {}).items():
            targets.setdefault(attack, set()).add(target)
    return {attack: sorted(classes) for attack, classes in targets.items()}


def targets_note(targets: dict[str, list[int]], attacks: list[str], alone: dict[str, list[int]] | None = None) -> list[str]:
    """The note under an ASR table naming the target class of each of its ``attacks`` (none without targets:
    failed cells); under a multi-attack table, also the attacks whose targets alone (Table 2) differ, so that a
    reader comparing the two tables knows."""
    attacks = [attack for attack in attacks if attack in targets]
    if not attacks:
        return []
    note = "Target classes: " + ", ".join(f"{attack} {class_list(targets[attack])}" for attack in attacks) + "."
    alone = alone or {}
    differ = [f"{attack} {class_list(alone[attack])}" for attack in attacks if alone.get(attack, targets[attack]) != targets[attack]]
    if differ:
        note += f" Alone (Table 2) they differ: {', '.join(differ)}."
    return [note]


def class_list(classes: list[int]) -> str:
    return "/".join(map(str, classes))


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
    for unit, (title, columns) in DETECTION_UNITS.items():
        selected = frame[frame["unit"] == unit]
        if selected.empty:
            continue
        cells = Cells()
        rows = [
            [name, attack_set] + [cells.text(select(selected, defense=name, attack_set=attack_set), value, scale, undefined=undefined)
                                  for _, value, scale, undefined in columns]
            for name in ordered(selected["defense"])
            for attack_set in ordered(selected["attack_set"])
        ]
        notes = cells.footnotes() + (model_population_notes(selected["record"].tolist()) if unit == "model" else [])
        tables.append(Table(title, ["Defense", "Attacks", *(header for header, *_ in columns)], rows, notes))
    return tables


def _single_attack_tables(frame: pd.DataFrame, targets: dict[str, list[int]]) -> list[Table]:
    frame = frame.assign(attack=frame["attacks"].map(lambda a: a[0]))
    attacks = ordered(frame["attack"])
    example_defenses = ordered(frame.loc[frame["unit"] == "example", "defense"])
    tables = []
    if example_defenses:
        cells = Cells()
        rows = [
            [name] + [cells.text(select(frame, defense=name, attack=a), lambda r: r["auroc"], 1, old_detection=OLD_DETECTION) for a in attacks]
            for name in example_defenses
        ]
        tables.append(Table("Table 1: one-attack detection AUROC", ["Defense", *attacks], rows, cells.footnotes()))
        cells = Cells()
        rows = [
            [name] + [cells.text(select(frame, defense=name, attack=a), lambda r, at=at: (r["tpr_at_fpr"] or {}).get(at), 100,
                                 old_detection=OLD_DETECTION, undefined=too_few_for_fpr("examples"))
                      for a in attacks for at in FIXED_FPR_LABELS]
            for name in example_defenses
        ]
        columns = ["Defense", *(f"{a} @{float(at):.0%}" for a in attacks for at in FIXED_FPR_LABELS)]
        tables.append(Table("Table 1b: one-attack TPR (%) at a fixed FPR of 1% and 5%, from the scores", columns, rows, cells.footnotes()))
        cells = Cells()
        rows = [
            [name] + [cells.text(select(frame, defense=name, attack=a), lambda r, rate=rate: r[rate], 100, old_detection=old)
                      for a in attacks for rate, old in REMOVED_RATES]
            for name in example_defenses
        ]
        columns = ["Defense", *(f"{rate.upper()} {a}" for a in attacks for rate, _ in REMOVED_RATES)]
        tables.append(Table(REMOVED_TITLE.format(prefix="Table 1c: one-attack"), columns, rows, cells.footnotes()))
    cells = Cells()
    rows = []
    for name, label in mitigation_rows(frame):
        selected = {a: select(frame, defense=name, attack=a) for a in attacks}
        rows.append(
            [label]
            + [cells.text(selected[a], after("clean_acc"), 100) for a in attacks]
            + [cells.text(selected[a], asr_of(a, "asr"), 100, asr=True) for a in attacks]
        )
    columns = ["Defense", *(f"CA {a}" for a in attacks), *(f"ASR {a}" for a in attacks)]
    title = f"Table 2: one-attack clean accuracy and attack success rate (%) after retraining; {AS_TRAINED}"
    tables.append(Table(title, columns, rows, cells.footnotes() + targets_note(targets, attacks)))
    tables += _effectiveness_table("Table 2c: one-attack", frame, attacks, lambda name, a: select(frame, defense=name, attack=a))
    title = "Table 2b: one-attack attack success rate (%) after retraining"
    return tables + _boosted_tables(title, frame, attacks, lambda name, a: select(frame, defense=name, attack=a))


def _multi_attack_tables(frame: pd.DataFrame, heading: str, alone: dict[str, list[int]]) -> list[Table]:
    """Tables 3, 3a-3c of one multi-attack set's records, ``heading`` (:func:`multi_attack_sets`'s) in their
    titles; ``alone``: the attacks' targets in the one-attack records."""
    attacks = ordered(a for combo in frame["attacks"] for a in combo)
    tables = []
    example_defenses = ordered(frame.loc[frame["unit"] == "example", "defense"])
    if example_defenses:
        cells = Cells()
        rows = [
            [name, cells.text(select(frame, defense=name), lambda r: r["auroc"], 1, old_detection=OLD_DETECTION)]
            + [cells.text(select(frame, defense=name), lambda r, a=a: r["auroc_per_attack"][a], 1, old_detection=OLD_DETECTION)
               for a in attacks]
            for name in example_defenses
        ]
        title = f"Table 3a: {heading} detection AUROC, all poisoned examples and each attack's against the clean ones"
        tables.append(Table(title, ["Defense", "All", *attacks], rows, cells.footnotes()))
        cells = Cells()
        rows = [[name] + [cells.text(select(frame, defense=name), lambda r, rate=rate: r[rate], 100, old_detection=old) for rate, old in REMOVED_RATES]
                for name in example_defenses]
        tables.append(Table(REMOVED_TITLE.format(prefix=f"Table 3d: {heading}"), ["Defense", "TPR", "FPR"], rows, cells.footnotes()))
    cells = Cells()
    rows = []
    asr = after("asr")
    for name, label in mitigation_rows(frame):
        selected = select(frame, defense=name)
        rows.append(
            [label, cells.text(selected, after("clean_acc"), 100)]
            + [cells.text(selected, asr_of(a, "asr"), 100, asr=True) for a in attacks]
            + [cells.text(selected, lambda r: float(np.mean(list(asr(r).values()))), 100, asr=True)]
        )
    columns = ["Defense", "Clean Acc.", *(f"ASR {a}" for a in attacks), "Avg. ASR"]
    title = f"Table 3: {heading} clean accuracy and attack success rate (%) after retraining; {AS_TRAINED}"
    tables.append(Table(title, columns, rows, cells.footnotes() + targets_note(attack_targets(frame), attacks, alone)))
    tables += _effectiveness_table(f"Table 3c: {heading}", frame, attacks, lambda name, a: select(frame, defense=name))
    title = f"Table 3b: {heading} attack success rate (%) after retraining"
    return tables + _boosted_tables(title, frame, attacks, lambda name, a: select(frame, defense=name))


def _effectiveness_table(
    prefix: str, frame: pd.DataFrame, attacks: list[str], cell: Callable[[str, str], list[dict[str, Any]]]
) -> list[Table]:
    """DER per attack (example-level defenses) and robust accuracy after retraining, both with the trigger as
    trained (:func:`benchbd.harness.metrics.defense_effectiveness`, :func:`~benchbd.harness.metrics.robust_accuracy`);
    none for records that have neither (made before benchbd measured them), "not recorded" for a cell of such records
    beside others."""
    if not any("der" in r or "robust_acc" in r for r in frame["record"]):
        return []
    cells = Cells()
    rows = []
    for name, label in mitigation_rows(frame):
        example = name in set(frame.loc[frame["unit"] == "example", "defense"])
        rows.append(
            [label]
            + [cells.text(cell(name, a), lambda r, a=a: r["der"].get(a), 1) if example else "–" for a in attacks]
            + [cells.text(cell(name, a), lambda r, a=a: r[after_field(r, "robust_acc")].get(a), 100) for a in attacks]
        )
    columns = ["Defense", *(f"DER {a}" for a in attacks), *(f"R-Acc {a}" for a in attacks)]
    title = (f"{prefix} defense effectiveness rating (DER: 0.5 no change, 1 backdoor gone at no accuracy cost) and "
             f"robust accuracy (%, triggered inputs kept at their true label) after retraining; trigger as trained")
    return [Table(title, columns, rows, cells.footnotes())]


def _no_attack_tables(frame: pd.DataFrame) -> list[Table]:
    """What each example-level defense costs when nothing is poisoned (the clean training set, ``--attacks
    none``): the examples it removed for nothing and the clean accuracy left after retraining."""
    cells = Cells()
    rows = []
    for name, label in mitigation_rows(frame):
        selected = select(frame, defense=name)
        undefended = label.startswith("No Defense")
        removed = "–" if undefended else cells.text(selected, lambda r: r["removed_frac"], 100)
        lost = "–" if undefended else cells.text(selected, lambda r: r["clean_acc"] - r["clean_acc_after"], 100)
        rows.append([label, removed, cells.text(selected, after("clean_acc"), 100), lost])
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
    cells = Cells()
    rows = [
        [label] + [cells.text(with_boosted(cell(name, a), a), asr_of(a, "asr_boosted"), 100) for a in boosted]
        for name, label in mitigation_rows(frame)
    ]
    return [Table(f"{title}; {BOOSTED}", ["Defense", *(f"ASR {a}" for a in boosted)], rows, cells.footnotes())]
