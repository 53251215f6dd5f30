"""Which invisible-trigger intensity gives AEGIS's robust-model figures? For each ε, the robust backdoored model of
AEGIS's invisible cell (the harness's own poisoning, PGD training and model cache): its clean accuracy, ASR as
trained and adversarial accuracy over the whole test split (PGD in the training ball, ``AEGIS.robust_verdicts``).

    python benchmarks/aegis_trigger_intensity.py --out RUN_DIR --epsilons 8,4,2 \\
        --train-norm l2 --train-eps 0.5 --train-step-size 0.1   # AEGIS's own defaults: linf 8/255, 2/255

The paper's robust models (AEGIS section V, RQ1): invisible static ASR 30.7%, about 48% adversarial, clean accuracy
89.3% with invisible triggers. The models are cached under the keys a matrix with the same settings uses
(``benchbd matrix --dataset DATASET --profile cpu --epochs 16 --attacks invisible --defenses aegis --mode single
-P invisible.epsilon=E -P aegis.train_norm=... --out RUN_DIR`` judges them without training them again). docs/findings.md ("aegis") has
its output.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchbd.harness.config import MatrixConfig
from benchbd.harness.plan import Plan
from benchbd.harness.poisoning import poison_training_set
from benchbd.harness.results import RunDirectory
from benchbd.harness.units.model import backdoored_model_trained_by
from benchbd.harness.workbench import Workbench, model_figures
from benchbd.attacks import DataPoisoningAttack
from benchbd.registry import default_registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="run directory whose model cache holds the models")
    parser.add_argument("--dataset", default="gtsrb:every=2,classes=10")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--epsilons", default="8,4,2", help="invisible.epsilon values, in 8-bit levels")
    parser.add_argument("--perturbation", default="static", choices=["static", "adversarial"])
    parser.add_argument("--train-norm", default="linf", choices=["linf", "l2"], help="aegis.train_norm")
    parser.add_argument("--train-eps", type=float, default=8 / 255, help="aegis.train_eps")
    parser.add_argument("--train-step-size", type=float, default=2 / 255, help="aegis.train_step_size")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.dataset}, narrow-cnn, cpu profile, "
          f"{args.epochs} epochs, invisible {args.perturbation}; PGD training {args.train_norm} {args.train_eps:.4g}, "
          f"steps of {args.train_step_size:.4g}", flush=True)
    for epsilon in [float(e) for e in args.epsilons.split(",")]:
        params = {"invisible": {"epsilon": epsilon, "perturbation": args.perturbation},
                  "aegis": {"train_norm": args.train_norm, "train_eps": args.train_eps, "train_step_size": args.train_step_size}}
        config = MatrixConfig(dataset=args.dataset, profile="cpu", epochs=args.epochs, attacks=["invisible"],
                              defenses=["aegis"], mode="single", device="cpu", params=params)
        plan = Plan(config, default_registry())
        run_dir = RunDirectory(args.out)
        try:
            bench = Workbench(plan, run_dir, step=lambda label, done, total: print(f"  {label} {done}/{total}", flush=True))
            group, defense = plan.groups[0], plan.defenses["aegis"]
            attacks, rng = bench.prepared_attacks(group)
            poisoned = poison_training_set(plan.data, [a for a in attacks if isinstance(a, DataPoisoningAttack)], rng)
            started = time.perf_counter()
            model = backdoored_model_trained_by(bench, group, poisoned.x, poisoned.y, defense, "aegis")
            trained = time.perf_counter() - started
            figures = model_figures(bench.trainer(group.seed), model, plan.data, attacks)
            x = torch.from_numpy(plan.data.x_test).permute(0, 3, 1, 2).float() / 255
            y = torch.from_numpy(np.asarray(plan.data.y_test)).long()
            robust = defense.robust_verdicts(model.cpu(), x, y, seed=0).mean()
        finally:
            run_dir.close()
        print(f"epsilon {epsilon:g}: clean accuracy {figures['clean_acc']:.4f}, ASR {figures['asr']['invisible']:.4f}, "
              f"adversarial accuracy {robust:.4f} on {len(y)} test images (trained or loaded in {trained:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
