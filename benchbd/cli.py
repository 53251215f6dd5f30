"""The ``benchbd`` command: list plugins, run a matrix, render a leaderboard."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from rich.text import Text

from benchbd.conformance import check_plugin, tiny_data
from benchbd.errors import BenchbdError
from benchbd.harness.config_file import read_config
from benchbd.data.images import default_data_root
from benchbd.harness.matrix import Matrix
from benchbd.harness.config import MatrixConfig, build_attack, load_dataset
from benchbd.harness.poisoning import assign_targets
from benchbd.harness.progress import make_progress
from benchbd.harness.records import load_results
from benchbd.leaderboard.render import print_tables, render_run
from benchbd.papers import PAPERS
from benchbd.registry import CATEGORIES, default_registry
from benchbd.training.profiles import PRECISIONS, PROFILES
from benchbd.visualize import attack_sheet

EXIT_BAD_INPUT = 2
EXIT_CELLS_FAILED = 1


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_params(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``-P patch.ratio=0.05`` → {"patch": {"ratio": "0.05"}} (converted and validated by the plugin's dataclass)."""
    params: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        plugin, dot, field = key.partition(".")
        if not sep or not dot or not plugin or not field:
            raise BenchbdError(f"-P expects PLUGIN.PARAMETER=VALUE (e.g. patch.ratio=0.05); got '{item}'")
        params.setdefault(plugin, {})[field] = value
    return params


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose error for a ``-p`` given after the command says where it goes."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:") and "-p" in message.split(":", 1)[1].split():
            message += " (-p goes before the command: benchbd -p MODULE COMMAND ...)"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="benchbd",
        description="Benchmark backdoor attacks and defenses on image classifiers.",
        epilog="Quick start: `benchbd matrix` runs on the embedded synth-signs dataset: every attack against every "
        "defense on a GPU; on a CPU the demo, every attack and defense of the three units at a demo scale (10 "
        "classes), 13 to 33 minutes on 2 cores by host, as leaderboard/synth-signs-10class-cpu-demo measured it "
        "(--attacks all --defenses all for the whole product).",
    )
    parser.add_argument(
        "-p", dest="plugins", action="append", default=[], metavar="NAME",
        help="load this plugin: an entry point of group 'benchbd' (even when BENCHBD_DISABLE_PLUGIN_AUTOLOAD is set), "
        "else a module of that name imported from PYTHONPATH, not installed (repeatable)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list installed plugins and where they come from")
    listing.add_argument("category", nargs="?", choices=CATEGORIES, help="only this category (default: all)")

    matrix = commands.add_parser(
        "matrix",
        help="run an attack × defense matrix",
        description="Train poisoned models, run defenses, and write results.jsonl and leaderboard.md into the run "
        "directory. Re-running the same command resumes: finished cells are skipped.",
    )
    matrix.add_argument("--config", type=Path, metavar="FILE.toml", help="read these options and plugin parameters from a TOML file; flags override it")
    matrix.add_argument("--dataset", help="synth-signs (default, offline; synth-signs:classes=N,frames=F for fewer classes or GTSRB-like tracks; the CPU demo: synth-signs:classes=10), gtsrb (gtsrb:every=K,classes=N: every Kth frame of each track, the N largest classes), cifar10, or npz:PATH")
    matrix.add_argument("--model", help="model architecture (default: the profile's model; see `benchbd list models`)")
    matrix.add_argument("--attacks", help="comma-separated attack names, or all; none adds the cells trained on the clean training set (Table 0: what a defense costs when nothing is poisoned) (default all; on a CPU with neither --attacks nor --defenses, the demo's)")
    matrix.add_argument("--defenses", help="comma-separated defense names, or all; none is the undefended row (default all; on a CPU with neither --attacks nor --defenses, the demo's)")
    matrix.add_argument("--multi-attacks", metavar="A,B,...", help="the data attacks of the multi-attack cell (default: BaDLoss section 3.3's six with --attacks all, else the data attacks named in --attacks)")
    matrix.add_argument("--trusted", type=int, metavar="N", help="known-clean training examples the defender holds, never judged (default: BaDLoss's 2n = 500; 1,500 against the warping attack alone; at most half the clean examples)")
    matrix.add_argument("--seeds", type=int, help="number of seeds: seeds K..K+N-1 with --first-seed K (default 1)")
    matrix.add_argument("--first-seed", type=int, metavar="K", help="start the seeds at K: --seeds N runs seeds K..K+N-1 (default 0; K+N at most 10,000). A seed's records do not depend on which run planned it, so seeds can be split over machines and their results.jsonl files concatenated")
    matrix.add_argument("--mode", choices=("single", "multi", "both"), help="single: each attack alone; multi: the multi-attack set (see --multi-attacks) in one training set; both (default). On a CPU it needs --attacks or --defenses (the demo sets its own)")
    matrix.add_argument("--profile", help=f"training profile (default fast; the CPU demo: cpu): {'; '.join(f'{p.name}: {p.description}' for p in PROFILES.values())}")
    matrix.add_argument("--epochs", type=int, metavar="N", help="train every model this many epochs instead of the profile's; the tables name the profile NAME (epochs=N) (default: the profile's)")
    matrix.add_argument("--precision", choices=PRECISIONS, help="auto (default): bf16 autocast on CUDA, fp32 on a CPU; bf16 or fp32 on every device. On a CPU with bf16 matrix units (Intel AMX) bf16 trains 1.5-1.9x faster (docs/findings.md); the tables name the profile NAME (precision=P)")
    matrix.add_argument("--device", help="auto (GPU when there is one, default), cpu, cuda, cuda:N")
    matrix.add_argument("--out", type=Path, help="run directory (default: runs/DATASET-MODEL-PROFILE, with -Nepochs and -PRECISION when --epochs or --precision change the profile)")
    matrix.add_argument("--data-root", type=Path, help="dataset downloads and caches (default: $BENCHBD_DATA or ~/.cache/benchbd)")
    matrix.add_argument("--clean-models", type=int, metavar="N", help="clean models that model-level defenses (neural-cleanse-model, aegis) are also judged on, for their false-positive rate (default 4; the CPU demo: 2; at most 10,000)")
    matrix.add_argument("--cell-timeout", type=float, metavar="SECONDS", help="give up on a cell (status error) after this long; default: no limit")
    matrix.add_argument("--executor", choices=("local", "ray"), help="run cells in this process (default) or as Ray tasks (needs pip install 'benchbd[ray]')")
    matrix.add_argument("--address", help="Ray cluster address for --executor ray (default: start a local Ray)")
    matrix.add_argument("-P", "--param", action="append", default=[], metavar="PLUGIN.PARAM=VALUE", help="a plugin parameter, e.g. -P patch.ratio=0.05 (repeatable); -P simulation.servers=8 sets the training-run unit's simulated servers (servers, malicious_fraction, backdoor_lr_ratio, replica_variation, kernel_noise)")

    board = commands.add_parser("leaderboard", help="render a run's results as markdown tables")
    board.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory (`benchbd matrix --out`) or any folder holding a results.jsonl")
    board.add_argument("-o", "--output", type=Path, help="write the markdown (and heatmap PNGs beside it) here, making its folder if missing (default: RUN_DIR/leaderboard.md)")
    board.add_argument("--compare", metavar="PAPER", help=f"also set Tables 1-3 beside a paper's published values: {', '.join(sorted(PAPERS))} (default: none)")

    conformance = commands.add_parser("check-plugin", help="run an attack or defense plugin through the contract on tiny data",
                                      description="Run an attack or defense plugin through the contract on tiny data; "
                                      "exits 1 when a check fails.")
    conformance.add_argument("name", metavar="NAME", help="an attack or defense name (`benchbd list`)")

    show = commands.add_parser("show-attack", help="draw clean images beside their triggered versions (BaDLoss figure 2)")
    show.add_argument("name", metavar="NAME", help="an attack name (`benchbd list attacks`)")
    show.add_argument("--dataset", default="synth-signs", help="dataset to take the clean images from (default synth-signs)")
    show.add_argument("--data-root", type=Path, help="dataset cache (default: $BENCHBD_DATA or ~/.cache/benchbd)")
    show.add_argument("-n", "--images", type=int, default=6, help="how many images (default 6)")
    show.add_argument("-o", "--output", type=Path, help="PNG to write (default: NAME.png)")
    show.add_argument("-P", "--param", action="append", default=[], metavar="PARAM=VALUE", help="an attack parameter (repeatable)")

    export = commands.add_parser("export", help="write a run's results as a table file (one row per cell)")
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory or any folder holding a results.jsonl")
    formats = export.add_mutually_exclusive_group(required=True)
    formats.add_argument("--csv", type=Path, metavar="FILE", help="write CSV")
    formats.add_argument("--parquet", type=Path, metavar="FILE", help="write Parquet (needs pyarrow: pip install 'benchbd[parquet]')")
    return parser


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    registry = default_registry(tuple(args.plugins))
    for category in [args.category] if args.category else CATEGORIES:
        table = Table(title=category, title_justify="left")
        for column in ("name", "unit" if category == "defenses" else "kind", "description", "distribution"):
            table.add_column(column)
        for entry in sorted(registry.tables[category].values(), key=lambda e: e.name):
            table.add_row(*(Text(str(v)) for v in (entry.name, entry.kind, entry.description, entry.distribution)))
        console.print(table)
    return 0


def cmd_matrix(args: argparse.Namespace, console: Console) -> int:
    settings = read_config(args.config) if args.config else {"params": {}}
    flags = {
        "dataset": args.dataset,
        "model": args.model,
        "attacks": _split_list(args.attacks) if args.attacks is not None else None,
        "defenses": _split_list(args.defenses) if args.defenses is not None else None,
        "multi_attacks": _split_list(args.multi_attacks) if args.multi_attacks is not None else None,
        "trusted": args.trusted,
        "seeds": args.seeds,
        "first_seed": args.first_seed,
        "mode": args.mode,
        "profile": args.profile,
        "epochs": args.epochs,
        "precision": args.precision,
        "device": args.device,
        "out": args.out,
        "data_root": args.data_root,
        "cell_timeout": args.cell_timeout,
        "clean_models": args.clean_models,
        "executor": args.executor,
        "ray_address": args.address,
    }
    settings.update({key: value for key, value in flags.items() if value is not None})
    for plugin, values in _parse_params(args.param).items():
        settings["params"].setdefault(plugin, {}).update(values)
    config = MatrixConfig(**settings, plugins=tuple(args.plugins))
    summary = Matrix(config, default_registry(config.plugins), make_progress(console)).run()
    tables = render_run(summary.run_dir)
    print_tables(tables, console)
    console.print(
        Text(f"{summary.done} cell(s) run, {summary.skipped} already finished; results in {summary.run_dir}/results.jsonl, "
             f"tables in {summary.run_dir}/leaderboard.md")
    )
    if summary.failed:
        console.print(Text(f"{len(summary.failed)} cell(s) failed:", style="red"))
        for line in summary.failed:
            console.print(Text(f"  {line}"))
        return EXIT_CELLS_FAILED
    return 0


def cmd_leaderboard(args: argparse.Namespace, console: Console) -> int:
    output = args.output or args.run_dir / "leaderboard.md"
    print_tables(render_run(args.run_dir, output, args.compare), console)
    console.print(Text(f"wrote {output}"))  # with the heatmaps it links, when the run has cells to draw
    return 0


def cmd_export(args: argparse.Namespace, console: Console) -> int:
    frame = load_results(args.run_dir)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    else:
        try:
            frame.to_parquet(args.parquet, index=False)
        except ImportError:
            raise BenchbdError("--parquet needs pyarrow: pip install 'benchbd[parquet]'") from None
    console.print(Text(f"wrote {len(frame)} rows to {args.csv or args.parquet}"))
    return 0


def cmd_check_plugin(args: argparse.Namespace, console: Console) -> int:
    checks = check_plugin(args.name, default_registry(tuple(args.plugins)))
    table = Table(title=f"check-plugin {args.name}", title_justify="left")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for check in checks:
        table.add_row(Text(check.name), Text("pass", style="green") if check.passed else Text("FAIL", style="red"), Text(check.detail))
    console.print(table)
    passed = sum(c.passed for c in checks)
    console.print(f"{passed} of {len(checks)} checks passed, on the kit's tiny data ({len(tiny_data().y_train)} synth-signs training images): the "
                  "contract the harness relies on, not how well the method works (a test of yours on data shows that: "
                  "CONTRIBUTING.md, \"Testing your plugin\").", markup=False, highlight=False)
    return 0 if passed == len(checks) else EXIT_CELLS_FAILED


def cmd_show_attack(args: argparse.Namespace, console: Console) -> int:
    if args.images < 1:
        raise BenchbdError(f"-n must be at least 1; got {args.images}")
    registry = default_registry(tuple(args.plugins))
    data = load_dataset(registry, args.dataset, args.data_root or default_data_root())
    values = _parse_params([f"{args.name}.{item}" for item in args.param]).get(args.name, {})
    attack = build_attack(registry, args.name, data, values)
    assign_targets([attack], data)
    attack.prepare(data.x_train, data.y_train, data.num_classes, np.random.default_rng(0))
    output = args.output or Path(f"{args.name}.png")
    rng = np.random.default_rng(0)
    attack_sheet(attack, data.x_test[rng.choice(len(data.x_test), size=min(args.images, len(data.x_test)), replace=False)], output)
    console.print(Text(f"wrote {output}"))
    return 0


COMMANDS = {"list": cmd_list, "matrix": cmd_matrix, "leaderboard": cmd_leaderboard, "export": cmd_export, "check-plugin": cmd_check_plugin, "show-attack": cmd_show_attack}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    errors = Console(stderr=True, soft_wrap=True)  # an error is one line, however narrow the terminal
    try:
        return COMMANDS[args.command](args, console)
    except BenchbdError as exc:
        errors.print(Text(f"benchbd: error: {exc}"))
        return EXIT_BAD_INPUT
    except torch.cuda.OutOfMemoryError:
        errors.print(Text("benchbd: error: the GPU ran out of memory; try a smaller model or profile batch size"))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        errors.print(Text("benchbd: interrupted; re-run the same command to resume where it stopped"))
        return 130


if __name__ == "__main__":
    sys.exit(main())
