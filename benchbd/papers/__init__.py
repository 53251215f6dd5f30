"""Published results shipped with benchbd, so that a run's tables can be set beside them
(``benchbd leaderboard RUN_DIR --compare badloss``).

``badloss.csv`` transcribes Tables 1, 2 and 3 (GTSRB and CIFAR-10 blocks) of "BaDLoss: Backdoor Detection via
Loss Dynamics" in long format, one value per line: ``table, dataset, defense, attack, metric, value``, with the
datasets, defenses and attacks named as the paper prints them and ``value`` as printed, in the table's units
(AUROC in Table 1, % in Tables 2 and 3). The metrics are ``auroc``, ``clean_acc``, ``asr`` and ``avg_asr``; Table
3's ``clean_acc`` and ``avg_asr`` are of the multi-attack cell and have no attack. The paper has no "No Defense" row
in Table 1, and its GTSRB No Defense Avg. ASR (81.91) is not the mean of that row's six ASRs (81.98): kept as printed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources

from benchbd.errors import BenchbdError


@dataclass(frozen=True)
class Paper:
    title: str  # how tables name it: "Table 1 beside BaDLoss's"
    setting: str  # the paper's training setting, so that nobody reads a CPU-scale run as a replication


@dataclass(frozen=True)
class PaperValue:
    """One cell of a paper's table, named with benchbd's plugin and dataset-family names."""

    table: int
    dataset: str  # the dataset family of the records it compares with: gtsrb, cifar10
    defense: str  # "none" for the paper's No Defense row, compared with the records of unit ``none``
    attack: str | None  # None for Table 3's clean accuracy and Avg. ASR
    metric: str
    value: float


PAPERS = {
    "badloss": Paper(
        title="BaDLoss",
        setting="ResNet-50, 100 epochs, AdamW, no augmentation (appendix A.4)",
    ),
}

#: The papers' names of datasets, defenses and attacks, as benchbd names them.
NAMES = {
    "GTSRB": "gtsrb",
    "CIFAR-10": "cifar10",
    "No Defense": "none",
    "Neural Cleanse": "neural-cleanse",
    "Activation Clustering": "activation-clustering",
    "Spectral Signatures": "spectral",
    "Frequency Analysis": "frequency",
    "Anti-Backdoor Learning": "abl",
    "BaDLoss": "badloss",
    "Patch": "patch",
    "Single-Pix": "single-pixel",
    "Blend-R": "blend-random",
    "Blend-P": "blend-dimple",
    "Sinusoid": "sinusoid",
    "Warping": "wanet",
}


def paper_table(name: str) -> list[PaperValue]:
    """Every value the paper ``name`` (a key of :data:`PAPERS`) ships with benchbd."""
    if name not in PAPERS:
        raise BenchbdError(f"unknown paper '{name}' to compare with; benchbd ships {', '.join(sorted(PAPERS))}")
    text = resources.files(__package__).joinpath(f"{name}.csv").read_text(encoding="utf-8")
    return [
        PaperValue(
            table=int(row["table"]),
            dataset=NAMES[row["dataset"]],
            defense=NAMES[row["defense"]],
            attack=NAMES[row["attack"]] if row["attack"] else None,
            metric=row["metric"],
            value=float(row["value"]),
        )
        for row in csv.DictReader(io.StringIO(text))
    ]
