"""``benchbd leaderboard --compare PAPER``: Tables 1-3 of a run beside a paper's published values (:mod:`benchbd.papers`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from benchbd.harness.records import after_field
from benchbd.leaderboard.cells import (
    NO_DEFENSE, OLD_DETECTION, UNDEFINED, Cells, Missing, Table, after, mitigation_rows, multi_attack_sets, ordered, scaled_mean, seed_values,
    select,
)
from benchbd.papers import PAPERS, Paper, PaperValue, paper_table


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
    single = frame[(frame["mode"] == "single") & (frame["attacks"].map(len) > 0)]  # not the no-attack cells
    if not single.empty:
        single = single.assign(attack=single["attacks"].map(lambda a: a[0]))
        attacks = ordered(single["attack"])
        cells = Cells()
        rows = [
            row
            for name in ordered(single.loc[single["unit"] == "example", "defense"])
            for a in attacks
            for row in _compared_row(cells, name, a, select(single, defense=name, attack=a), lambda r: r["auroc"], 1,
                                     value_of.get((1, plugin[name], plugin[a], "auroc")), old_detection=OLD_DETECTION)
        ]
        if rows:
            title = f"Table 1 {versus}: one-attack detection AUROC; Δ = ours − paper"
            tables.append(Table(title, COMPARED_COLUMNS, rows, [setting, *cells.footnotes()]))
        cells = Cells()
        rows = []
        for name, label in mitigation_rows(single):
            selected = {a: select(single, defense=name, attack=a) for a in attacks}
            for a in attacks:
                rows += _compared_row(cells, label, f"CA {a}", selected[a], after("clean_acc"), 100,
                                      value_of.get((2, defense_of(name), plugin[a], "clean_acc")))
            for a in attacks:
                rows += _compared_row(cells, label, f"ASR {a}", selected[a], _compared_asr(a), 100,
                                      value_of.get((2, defense_of(name), plugin[a], "asr")), asr=True)
        title = f"Table 2 {versus}: one-attack clean accuracy and attack success rate (%) after retraining; {asr}"
        tables.append(Table(title, COMPARED_COLUMNS, rows, [setting, _asr_note(records, attacks), *cells.footnotes()]))
    for heading, multi in multi_attack_sets(frame):
        attacks = ordered(a for combo in multi["attacks"] for a in combo)
        paper_attacks = {v.attack for v in values if v.table == 3 and v.metric == "asr"}
        same_attacks = {plugin[a] for a in attacks} == paper_attacks
        cells = Cells()
        rows = []
        for name, label in mitigation_rows(multi):
            selected = select(multi, defense=name)
            rows += _compared_row(cells, label, "Clean Acc.", selected, after("clean_acc"), 100,
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
        title = f"Table 3 {versus}: {heading} clean accuracy and attack success rate (%) after retraining; {asr}"
        tables.append(Table(title, COMPARED_COLUMNS, rows, [*notes, *cells.footnotes()]))
    return tables


def _compared_row(
    cells: Cells, defense: str, column: str, records: list[dict[str, Any]], value: Callable[[dict[str, Any]], Any],
    scale: float, paper: float | None, *, asr: bool = False, old_detection: str | None = None
) -> list[list[str]]:
    """[[defense, column, ours, paper, Δ]], Δ from the mean over seeds; [] where neither we nor the paper have it."""
    if not records and paper is None:
        return []
    ours = cells.text(records, value, scale, asr=asr, old_detection=old_detection) if records else ""
    values = seed_values(records, value) if records else UNDEFINED
    mean = None if isinstance(values, Missing) else scaled_mean(values, scale)
    paper_text = "" if paper is None else f"{paper:.2f}"
    delta = "" if paper is None or mean is None else f"{mean - paper:+.2f}"
    return [[defense, column, ours, paper_text, delta]]


def _compared_asr(attack: str) -> Callable[[dict[str, Any]], float | None]:
    """One attack's ASR after mitigation as the paper's figures measure it: boosted where the record has the
    attack's boosted ASR, else as trained."""
    def value(record: dict[str, Any]) -> float | None:
        boosted = record.get(after_field(record, "asr_boosted"), {})
        return boosted[attack] if attack in boosted else record[after_field(record, "asr")].get(attack)
    return value


def _asr_note(records: list[dict[str, Any]], attacks: list[str]) -> str:
    """Which of the table's attacks are compared with their boosted ASR and which with the ASR as trained."""
    held = {a for r in records for a in r.get("asr_boosted", {})}
    boosted = [a for a in attacks if a in held] or ["none"]
    plain = [a for a in attacks if a not in held] or ["none"]
    return (f"ASR compared with the paper's: ours boosted ×2 at test time (asr_boosted) for {', '.join(boosted)}; "
            f"as trained (asr) for {', '.join(plain)}. The paper's ASR comes from BaDLoss's reference code, which "
            "boosts the blends and sinusoid ×2 at test time (BOOSTING_RATIO).")
