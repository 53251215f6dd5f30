"""A run directory's leaderboard: the header (dataset, profile, seeds, plugins, code versions), markdown with
heatmaps beside it, and the terminal's tables."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text
from tabulate import tabulate

from benchbd.harness.config import CPU_DEMO
from benchbd.harness.environment import cpu_setting
from benchbd.harness.results import experiment
from benchbd.harness.records import latest_records
from benchbd.leaderboard.cells import Table, count_range, made_before_code_digests, markdown_escape
from benchbd.leaderboard.compare import comparison_tables
from benchbd.leaderboard.heatmaps import write_heatmaps
from benchbd.leaderboard.labels import label_configurations
from benchbd.leaderboard.tables import build_tables
from benchbd.papers import PAPERS
from benchbd.training.profiles import PROFILES


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


def run_header(records: list[dict[str, Any]], notes: Sequence[str] = ()) -> str:
    """The run's dataset, model, profile and seed count, the distributions its plugins came from (records written
    before benchbd recorded them have none), the notes of :func:`code_notes`, then ``notes``. ``records`` as read,
    not relabelled: their ``code`` digests are keyed by the plugins' own names."""
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
    return "\n\n".join(["# benchbd leaderboard", summary, *seed_notes(records), *scale_notes(records), *poisoning_notes(records),
                        *trusted_notes(records), *plugins, *code_notes(records), *environment_notes(records), *notes]) + "\n"


def poisoning_notes(records: list[dict[str, Any]]) -> list[str]:
    """The share of the training set each data attack poisons with its trigger (its ``ratio`` parameter), every
    value the records hold, so that a table's ASR can be read against it; the examples an attack changes besides
    (WaNet's noise mode, :meth:`~benchbd.DataPoisoningAttack.extra_count`) are not in it."""
    ratios: dict[str, set[float]] = {}
    for r in records:
        for attack, params in (r.get("params") or {}).get("attacks", {}).items():
            if isinstance(params.get("ratio"), (int, float)):
                ratios.setdefault(attack, set()).add(params["ratio"])
    if not ratios:
        return []
    shares = ", ".join(f"{markdown_escape(a)} {' and '.join(f'{100 * v:.3g}%' for v in sorted(values))}" for a, values in ratios.items())
    return [f"Poisoned share of the training set (the attack's ratio), by attack: {shares}."]


def trusted_notes(records: list[dict[str, Any]]) -> list[str]:
    """How many trusted clean examples the example-level defenses held (BaDLoss appendix A.1's C, ``--trusted``),
    which detection never counts: a range where cells differ (the warping attack's triple set, a cap at half the
    clean examples, another ``--trusted``)."""
    counts = {r["trusted"] for r in records if r["unit"] == "example" and "trusted" in r}
    if not counts:
        return []
    return [f"The example-level defenses held {count_range(counts)} trusted clean training examples a cell (`--trusted`, BaDLoss "
            "appendix A.1's bona fide clean set), never judged."]


def seed_notes(records: list[dict[str, Any]]) -> list[str]:
    """A note when some cells hold fewer of the run's seeds than others (a run stopped, a seed added to some cells):
    their mean is over fewer seeds, and a cell of one shows its value without "(n=1)"."""
    seeds: dict[str, set[int]] = {}
    for r in records:
        seeds.setdefault(experiment(r), set()).add(r["seed"])
    counts = [len(s) for s in seeds.values()]
    if min(counts) == max(counts):
        return []
    fewer = sum(count < max(counts) for count in counts)
    return [f"{fewer} of {len(counts)} experiments hold fewer seeds than the others' {max(counts)} (as few as "
            f"{min(counts)}): their cells are means over fewer seeds, and a cell of one seed shows its value alone."]


def scale_notes(records: list[dict[str, Any]]) -> list[str]:
    """What a synth-signs run is: a demo scale, not the papers' setting (issue 19)."""
    datasets = {r["dataset"] for r in records}
    if not any(d.startswith("synth-signs") for d in datasets):
        return []
    note = ("Demo scale: synth-signs is benchbd's generated stand-in for GTSRB, not the papers' data; these figures "
            "show what benchbd measures, not the papers' setting.")
    if CPU_DEMO.dataset in datasets:
        profile = PROFILES[CPU_DEMO.profile]
        note += (f" {CPU_DEMO.dataset} is the CPU demo's (`benchbd matrix` with nothing named on a CPU): "
                 f"{profile.model}, {profile.epochs} epochs, poisoning ratios above the papers' and a smaller AEGIS "
                 "budget so that the whole field runs in minutes (each record's params say which).")
    return [note]


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


def environment_notes(records: list[dict[str, Any]]) -> list[str]:
    """Where the records were computed: each environment (device, the instruction set of torch's CPU kernels and
    torch's thread count, torch, Python, benchbd's commit) with its count of records when there are several, since
    float32 training on a CPU trains other models under another instruction set or thread count; and the count of
    records written before benchbd recorded it."""
    known = [r["environment"] for r in records if r.get("environment")]
    counts = Counter(describe_environment(e) for e in known)
    notes = []
    if len(counts) == 1 and len(known) == len(records):
        notes.append(f"Computed on {markdown_escape(next(iter(counts)))}.")
    elif counts:
        where = "; ".join(f"{markdown_escape(e)} ({n} record{'s' if n > 1 else ''})" for e, n in sorted(counts.items()))
        notes.append(f"Computed in {len(counts)} environment{'s' if len(counts) > 1 else ''}: {where}.")
        cpu = {cpu_setting(e) for e in known} - {None}
        if len(cpu) > 1:
            notes.append(f"Its CPU records come from {len(cpu)} settings of instruction set and torch threads "
                         f"({', '.join(sorted(cpu))}): float32 training under each trains other models, so their "
                         "cells are not one computation (docs/architecture.md, \"What a record depends on\").")
    if missing := len(records) - len(known):
        notes.append(f"{missing} of {len(records)} records were written before benchbd recorded where a cell was computed.")
    return notes


def describe_environment(environment: dict[str, Any]) -> str:
    """One line for a record's ``environment`` (:func:`benchbd.harness.environment.environment`); a key it lacks
    reads "?"."""
    known = {key: value for key, value in environment.items() if value is not None}
    packages = known.get("packages") or {}
    device = known.get("device_name", known.get("device", "?"))
    if known.get("device") == "cpu":
        device += f" ({known.get('cpu_capability', '?')}, {known.get('torch_threads', '?')} torch threads)"
    commit = known.get("git_commit")
    code = f"benchbd commit {commit[:7]}{'+modified' if commit.endswith('+modified') else ''}" if commit else \
        f"benchbd {packages.get('benchbd', '?')}"
    return f"{device}, torch {packages.get('torch', '?')}, Python {known.get('python', '?')}, {code}"


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


def render_run(run_dir: Path, output: Path | None = None, compare: str | None = None) -> list[Table]:
    """Render the run directory's tables to markdown at ``output`` (default RUN_DIR/leaderboard.md; its folder is
    made if missing), with heatmap PNGs beside it, linked from the markdown, and after them the tables beside the
    paper ``compare``'s (:func:`comparison_tables`). Returns the tables for the terminal."""
    read, superseded = latest_records(run_dir)
    output = Path(output) if output else Path(run_dir) / "leaderboard.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    records = label_configurations(read)
    tables = build_tables(records)
    compared = comparison_tables(records, read, compare) if compare else []
    heatmaps = write_heatmaps(records, output.parent)
    links = "".join(f"![{name}]({png.name})\n" for name, png in heatmaps.items())
    beside = to_markdown(compared, f"## Beside {PAPERS[compare].title}\n") if compare else ""
    recomputed = [f"{superseded} earlier record(s) of a cell computed again here (its code or settings changed) are left "
                  "out: each seed shows its latest record."] if superseded else []
    output.write_text(to_markdown(tables, run_header(read, recomputed)) + beside + ("\n" + links if links else ""))
    return tables + compared
