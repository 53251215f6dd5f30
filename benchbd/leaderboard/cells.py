"""What one leaderboard cell says: the mean (± the 95% t-interval over seeds) of the records of one defense and
attack set, or why it has none (footnotes), and the record fields the mitigation tables read."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from benchbd.harness.metrics import FIXED_FPRS
from benchbd.harness.records import after_field

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
#: The footnote of a detection cell with such records (AUROC, the TPR at a fixed FPR).
OLD_DETECTION = ("detection of records made before benchbd recorded code digests: the defender's trusted examples "
                 "counted as judged, which raises an AUROC A to A + f·(1 − A), f their share of the clean examples")
#: The footnote of an FPR cell with such records.
OLD_FPR = ("FPR of records made before benchbd recorded code digests: the defender's trusted examples counted among "
           "the judged clean ones, which lowers the FPR where the defense flags them less often than the others "
           "(BaDLoss's, whose clean probes they are)")


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


def mean_interval(values: list[float], scale: float) -> str:
    """One value as it is; several (seeds) as the mean ± the half-width of its 95% t-interval, with n."""
    array = np.asarray(values, dtype=float) * scale
    if len(array) == 1:
        return f"{array[0]:.2f}"
    half = scipy.stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array))
    return f"{array.mean():.2f} ± {half:.2f} (n={len(array)})"


@dataclass(frozen=True)
class Missing:
    """Why a cell has no value: ``label`` ("n/a" or "error") and the footnote's text."""

    label: str
    reason: str


UNDEFINED = Missing("n/a", "undefined: the cell has no poisoned or no clean examples, models or servers, too few clean "
                           "ones to measure that FPR, or a target the defense did not examine")


def seed_values(
    records: list[dict[str, Any]], value: Callable[[dict[str, Any]], float | None], undefined: Missing = UNDEFINED
) -> list[float] | Missing:
    """The value of each seed's record, or why the cell has none: a seed that failed or did not apply (its status
    and error), a field the records predate, a value the metric leaves undefined (``undefined``, the column's own
    reason where it has one). The tables, the paper comparison and the heatmaps read a cell through this alone."""
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        status = failed[0]["status"].replace("_", " ")
        return Missing("n/a" if status == "not applicable" else "error", f"{status}: {failed[0]['error']}")
    try:
        values = [value(r) for r in records]
    except KeyError as missing:  # a field added to records after these were written
        return Missing("n/a", f"not recorded: the benchbd that made these records did not measure {missing}")
    return undefined if any(v is None for v in values) else values


def scaled_mean(values: list[float], scale: float) -> float:
    """The mean over seeds that a cell's text shows (:func:`mean_interval`), as a number."""
    return float((np.asarray(values, dtype=float) * scale).mean())


def count_range(counts: set[int]) -> str:
    """Counts that differ between cells as one figure, or as "lowest to highest": "500", "500 to 1,500"."""
    low, high = min(counts), max(counts)
    return f"{low:,}" if low == high else f"{low:,} to {high:,}"


def _seeds(count: int, of: int) -> str:
    """" in 1 of 2 seeds" where a caveat holds for some of a cell's seeds, "" where for all."""
    return "" if count == of else f" in {count} of {of} seeds"


def recorded_warnings(record: dict[str, Any]) -> list[str]:
    """The distinct warnings in a record's ``details["warnings"]`` (a list of texts; a lone text is one warning)."""
    warnings = (record.get("details") or {}).get("warnings") or []
    return list(dict.fromkeys(map(str, [warnings] if isinstance(warnings, str) else warnings)))


class Cells:
    """Turns the records of one table cell (several seeds) into text, collecting footnotes for n/a and errors."""

    def __init__(self) -> None:
        self.notes: dict[str, int] = {}

    def mark(self, text: str) -> str:
        number = self.notes.setdefault(text, len(self.notes) + 1)
        return f"({number})"

    def text(
        self, records: list[dict[str, Any]], value: Callable[[dict[str, Any]], float | None], scale: float, *,
        asr: bool = False, old_detection: str | None = None, undefined: str | None = None,
    ) -> str:
        """The cell's mean ± 95% confidence interval; ``asr``: the value is read from the ``asr`` fields, boosted in
        old records; ``old_detection``: the footnote of an example-level detection figure that old records
        (:func:`made_before_code_digests`) biased, :data:`OLD_DETECTION` or :data:`OLD_FPR`; ``undefined``: why the
        column's value can be undefined, for its footnote (else :data:`UNDEFINED`'s list of every reason)."""
        if not records:
            return "–"
        values = seed_values(records, value, Missing("n/a", f"undefined: {undefined}") if undefined else UNDEFINED)
        if isinstance(values, Missing):
            return f"{values.label} {self.mark(values.reason)}"
        return " ".join([mean_interval(values, scale), *self._caveats(records, asr, old_detection)])

    def _caveats(self, records: list[dict[str, Any]], asr: bool, old_detection: str | None) -> list[str]:
        """Marks for a defense that removed nothing, with the gate it recorded, for the warnings an example-level
        defense recorded (probes that fell short), for seeds computed by different versions of the code, and for
        old records' ASR and detection."""
        marks = []
        empty = [r for r in records if r["unit"] == "example" and r.get("removed_frac") == 0]
        if empty:
            gate = (empty[0].get("details") or {}).get("gate")
            marks.append(self.mark(f"flagged nothing{_seeds(len(empty), len(records))}" + (f": {gate}" if gate else "")))
        warned = Counter(warning for r in records if r["unit"] == "example" for warning in recorded_warnings(r))
        for warning, count in warned.items():
            marks.append(self.mark(f"the defense warned{_seeds(count, len(records))}: {warning}"))
        if len({json.dumps(r["code"], sort_keys=True) for r in records if not made_before_code_digests(r)}) > 1:
            marks.append(self.mark("its seeds were computed by different versions of benchbd's or a plugin's code"))
        if asr and any(made_before_code_digests(r) for r in records):
            marks.append(self.mark(OLD_ASR))
        if old_detection and any(made_before_code_digests(r) and r["unit"] == "example" for r in records):
            marks.append(self.mark(old_detection))
        return marks

    def footnotes(self) -> list[str]:
        return [f"({n}) {text}" for text, n in self.notes.items()]


def ordered(values: pd.Series) -> list[str]:
    return list(dict.fromkeys(values))


def select(frame: pd.DataFrame, **where: Any) -> list[dict[str, Any]]:
    mask = np.ones(len(frame), dtype=bool)
    for key, value in where.items():
        mask &= (frame[key] == value).to_numpy()
    return frame.loc[mask, "record"].tolist()


def multi_attack_sets(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The multi-attack records by attack set, in order of appearance, each with the heading its tables' titles
    use: "multi-attack", or "multi-attack (patch+wanet)" where a run has several sets. Two sets are two
    experiments, whose records no table cell may average together."""
    multi = frame[(frame["mode"] == "multi") & (frame["attacks"].map(len) > 0)]
    sets = multi["attacks"].map("+".join)
    named = len(set(sets)) > 1
    return [(f"multi-attack ({attack_set})" if named else "multi-attack", multi[sets == attack_set])
            for attack_set in ordered(sets)]


def mitigation_rows(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(defense, row label) of the mitigation tables: the baselines (unit ``none``) first as "No Defense", named
    when there are several, then every defense that filters and retrains."""
    baselines = ordered(frame.loc[frame["unit"] == NO_DEFENSE, "defense"])
    defenses = ordered(frame.loc[frame["unit"] == "example", "defense"])
    labels = ["No Defense"] if len(baselines) == 1 else [f"No Defense ({name})" for name in baselines]
    return [*zip(baselines, labels), *((name, name) for name in defenses)]


def after(field: str) -> Callable[[dict[str, Any]], Any]:
    """A record's ``field`` after mitigation (``clean_acc``, ``asr``), as :func:`after_field` finds it."""
    return lambda r: r[after_field(r, field)]


def asr_of(attack: str, field: str) -> Callable[[dict[str, Any]], float]:
    """One attack's ASR after mitigation, from ``field`` (``asr`` or ``asr_boosted``)."""
    return lambda r: r[after_field(r, field)].get(attack)


def with_boosted(records: list[dict[str, Any]], attack: str) -> list[dict[str, Any]]:
    """The records that have the attack's boosted ASR, and those that failed (their cell says why)."""
    return [r for r in records if r["status"] != "ok" or attack in r.get(after_field(r, "asr_boosted"), {})]
