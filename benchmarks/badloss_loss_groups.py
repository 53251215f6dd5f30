"""BaDLoss's probationary run group by group: the mean (median) loss per epoch of the clean and the poisoned
examples it judges and of its three probe sets, where each group's nearest probes lie, and the k-NN's AUROC; with
``--frequency``, also the AUROC of the frequency detector trained on the same probes.

It answers "why do the probe-based defenses miss attack A here?" (issue 16): a poisoned trajectory is called clean
when it lies nearer the clean probes' than the backdoor and mislabelled probes'. The harness's own functions do
the work (poisoning, ``trusted_sample``, ``inject_probes``, ``loss_trajectories``, ``neighbour_votes``,
``FrequencyAnalysis``); the draws are this script's (``--seed``), not a matrix cell's, so its AUROC is one more draw
beside the leaderboard's.

    OMP_NUM_THREADS=2 python benchmarks/badloss_loss_groups.py --dataset gtsrb:every=2 --attacks wanet \
        [--probes 250] [--trusted N] [--epochs N] [--set optimizer=adamw] [-P wanet.ratio=0.2] [--frequency] [--no-badloss]

(docs/findings.md, "BaDLoss on single-pixel and wanet", has its output.)
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
import numpy as np
import torch
from scipy.spatial.distance import cdist
from sklearn.metrics import roc_auc_score

from benchbd import ExampleContext
from benchbd.attacks import probe_multiplier
from benchbd.cli import _parse_params
from benchbd.data.images import default_data_root
from benchbd.harness.config import build_attack, load_dataset
from benchbd.harness.poisoning import CLEAN, assign_targets, poison_training_set
from benchbd.harness.units.example import example_context, trusted_sample
from benchbd.registry import default_registry
from benchbd.training.profiles import get_profile, with_options
from benchbd.training.trainer import Trainer
from benchbd_builtins.defenses.badloss import BaDLoss, loss_trajectories, neighbour_votes
from benchbd_builtins.defenses.frequency import FrequencyAnalysis
from benchbd_builtins.defenses.probes import ProbeSet, inject_probes


def group_row(name: str, losses: np.ndarray, epochs: list[int]) -> str:
    """A table row: the group's mean (median) loss after each of ``epochs``."""
    cells = [f"{losses[:, e - 1].mean():.2f} ({np.median(losses[:, e - 1]):.2f})" for e in epochs]
    return f"| {name} ({len(losses):,}) | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="gtsrb:every=2")
    parser.add_argument("--attacks", default="wanet", help="one attack, or several in one training set (section 3.3's multi-attack setting)")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--epochs", type=int, default=None, help="train this many epochs instead of the profile's")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="PROFILE_FIELD=VALUE (e.g. optimizer=adamw, lr=0.001, schedule=cosine)")
    parser.add_argument("--probes", type=int, default=250, help="n per probe set, before the attack's probe multiplier")
    parser.add_argument("--trusted", type=int, default=None, help="trusted examples (default: BaDLoss's 2n)")
    parser.add_argument("-k", type=int, default=None, help="the k-NN's k (default BaDLoss's: 20 with one attack; 10 on GTSRB with several)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frequency", action="store_true", help="also train the frequency detector on the probes")
    parser.add_argument("--frequency-epochs", type=int, default=FrequencyAnalysis.epochs, help="the frequency detector's epochs")
    parser.add_argument("--no-badloss", action="store_true", help="skip BaDLoss's probationary run")
    parser.add_argument("-P", dest="params", action="append", default=[], help="ATTACK.PARAM=VALUE, as benchbd matrix's -P")
    args = parser.parse_args()

    registry = default_registry()
    data = load_dataset(registry, args.dataset, default_data_root())
    values = _parse_params(args.params)
    names = args.attacks.split(",")
    attacks = [build_attack(registry, name, data, values.get(name, {})) for name in names]
    assign_targets(attacks, data)
    rng = np.random.default_rng(args.seed)
    for attack in attacks:
        attack.prepare(data.x_train, data.y_train, data.num_classes, rng)
    poisoned = poison_training_set(data, attacks, rng)
    single = len(attacks) == 1
    profile = with_options(get_profile(args.profile), args.epochs)
    for item in args.overrides:
        key, value = item.split("=", 1)
        kind = type(getattr(profile, key))
        profile = replace(profile, name=f"{profile.name} ({item})", **{key: kind(value)})
    trainer = Trainer(profile, torch.device("cpu"), args.seed)
    model_spec = registry.model(profile.model)
    new_model = lambda: model_spec.build(data.num_classes)  # noqa: E731
    n = args.probes * probe_multiplier(attacks, single)
    count = args.trusted or 2 * n
    trusted = trusted_sample(poisoned, count, rng)
    context = example_context(
        data, poisoned, new_model(), trainer, new_model, attacks,
        rng=rng, probe_seed=int(rng.integers(2**32)), trusted=trusted, single_attack=single, features=lambda: np.zeros(0),
    )
    probes = inject_probes(context, n)
    judged = np.ones(len(poisoned.y), bool)
    judged[trusted] = False
    poison = poisoned.mask
    targets = ", ".join(f"{a.name} → {a.target}" for a in attacks)
    print(f"{args.attacks} on {args.dataset} (targets {targets}), {int(poison.sum()):,} poisoned of {len(poison):,}; "
          f"probe trigger {probes.trigger.name}, probes per set {n} (trusted {len(trusted)})")
    if probes.warnings:
        print("warnings:", "; ".join(probes.warnings))
    if args.frequency:
        verdict = FrequencyAnalysis(epochs=args.frequency_epochs, probes=args.probes).score_examples(context)
        print(f"frequency ({args.frequency_epochs} epochs): AUROC {roc_auc_score(poison[judged], verdict.scores[judged]):.3f}, poison flagged "
              f"{verdict.flagged[judged & poison].mean():.1%}, clean flagged {verdict.flagged[judged & ~poison].mean():.1%}")
    if not args.no_badloss:
        k = args.k or BaDLoss.default_k(context)
        badloss_groups(context, probes, judged, poisoned.source, [a.name for a in attacks], k, profile.name, profile.epochs)


def badloss_groups(context: ExampleContext, probes: ProbeSet, judged: np.ndarray, source: np.ndarray, names: list[str],
                   k: int, profile: str, epochs: int) -> None:
    poison = source != CLEAN
    started = time.perf_counter()
    trajectories = loss_trajectories(context, probes.x, probes.y, "probationary run")
    seconds = time.perf_counter() - started
    judged = judged.copy()
    judged[probes.mislabeled] = False
    probe_trajectories = trajectories[probes.indices]
    fraction, scores = neighbour_votes(trajectories[judged], probe_trajectories, probes.anomalous, k)
    flagged = fraction > 0.1
    print(f"badloss, profile {profile}: probationary run {seconds:.0f} s; k = {k}: AUROC "
          f"{roc_auc_score(poison[judged], scores):.3f}, poison flagged {flagged[poison[judged]].mean():.1%}, "
          f"clean flagged {flagged[~poison[judged]].mean():.1%}")
    groups = [("clean, judged", judged & ~poison)]
    for index, name in enumerate(names):
        mine = source[judged] == index
        if len(names) > 1:
            others = ~poison[judged]
            print(f"  {name}: AUROC {roc_auc_score(mine[mine | others], scores[mine | others]):.3f} against the clean examples, "
                  f"flagged {flagged[mine].mean():.1%}")
        groups.append((f"poisoned by {name}, judged", judged & (source == index)))
    shown = sorted({1, 2, 3, 4, epochs})
    print("\n| group | " + " | ".join(f"epoch {e}" for e in shown) + " |")
    print("| --- |" + " --- |" * len(shown))
    for name, mask in groups:
        print(group_row(name, trajectories[mask], shown))
    for name, indices in (("clean probes", probes.clean), ("backdoor probes", probes.backdoor), ("mislabelled probes", probes.mislabeled)):
        print(group_row(name, trajectories[indices], shown))
    kinds = np.repeat(["clean", "backdoor", "mislabelled"], [len(probes.clean), len(probes.backdoor), len(probes.mislabeled)])
    print("\nShare of each judged group's k nearest probes by kind (clean / backdoor / mislabelled):")
    for name, mask in groups:
        rows = trajectories[mask]
        if len(rows) > 5000:
            rows = rows[np.random.default_rng(0).choice(len(rows), 5000, replace=False)]
        nearest = kinds[np.argpartition(cdist(rows, probe_trajectories), k - 1, axis=1)[:, :k]]
        print(f"  {name}: " + " / ".join(f"{float((nearest == kind).mean()):.2f}" for kind in ("clean", "backdoor", "mislabelled")))

if __name__ == "__main__":
    main()
