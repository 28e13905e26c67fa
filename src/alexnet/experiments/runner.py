"""Running an experiment by name, with the settings of a full run or of a `--quick` one."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from alexnet import console
from alexnet.errors import UserError, one_of

EXPERIMENTS = ("relu-vs-tanh", "lrn", "pooling", "precision", "init", "towers")
# Seeds per arm unless --seeds says: the towers claim is about "every run".
DEFAULT_SEEDS = {"towers": 8}
OTHER_SEEDS = 3
DEFAULT_LRS = "0.0001,0.0003,0.001,0.003,0.01,0.03,0.1"
# A smoke run (minutes on a CPU; its numbers mean nothing): a subset of each class, one
# epoch, one seed, the first two swept lrs, small batches and held-out split.
QUICK_PER_CLASS = 100
QUICK_OVERRIDES = ("epochs=1", "val_per_class=10", "batch_size=50")
# towers --quick: two seeds (a spread to plot) and two epochs (a timeline).
QUICK_TOWERS = (2, "epochs=2")


@dataclass(frozen=True)
class Experiment:
    """One experiment to run: its name, data, results folder and settings (see
    `alexnet experiment --help` for each)."""

    name: str
    data: str
    out: Path
    seeds: int | None = None       # None: DEFAULT_SEEDS, else OTHER_SEEDS
    recipe: str = "cifar10"
    lrs: str = DEFAULT_LRS
    sweep_epochs: int = 2
    max_epochs: int = 60
    per_class: int | None = None
    quick: bool = False
    overrides: tuple[str, ...] = ()
    arms: tuple[str, ...] = ()     # lrn, pooling, precision, init: only these arms; () all


def parse_lrs(text: str) -> list[float]:
    """The learning rates of a comma-separated list; UserError naming it otherwise."""
    try:
        lrs = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--lrs {text!r} is not a comma-separated list of numbers") from None
    if not lrs or not all(math.isfinite(lr) and lr > 0 for lr in lrs):
        raise UserError(f"--lrs must list one or more finite learning rates greater than 0, "
                        f"got {text!r}")
    return lrs


def run_experiment(exp: Experiment) -> dict:
    """Train every run of `exp` (continuing those already there) and return its results."""
    # Here, not at the top: `alexnet --help` imports this module (the experiment command's
    # choices), and the experiments import torch.
    from alexnet.experiments import ablations, common, relu_vs_tanh, towers

    if exp.name not in EXPERIMENTS:
        raise one_of("experiment", exp.name, EXPERIMENTS)
    lrs = parse_lrs(exp.lrs)
    per_class = QUICK_PER_CLASS if exp.quick else exp.per_class
    overrides = [*QUICK_OVERRIDES, *exp.overrides] if exp.quick else list(exp.overrides)
    seeds = exp.seeds or DEFAULT_SEEDS.get(exp.name, OTHER_SEEDS)
    if exp.arms and exp.name not in ablations.ARMS:
        raise UserError(f"--arm is for the experiments with arms ({', '.join(ablations.ARMS)}), "
                        f"not {exp.name}")
    if exp.name == "relu-vs-tanh":
        # Its sweep sets epochs itself and it holds nothing out (it watches training error).
        kept = [o for o in overrides if not o.startswith(("epochs=", "val_per_class="))]
        return relu_vs_tanh.run_relu_vs_tanh(
            exp.data, exp.out, lrs[:2] if exp.quick else lrs,
            1 if exp.quick else exp.sweep_epochs, 2 if exp.quick else exp.max_epochs,
            per_class, kept)
    note = common.held_out_kept_note(exp.recipe)
    if note:
        console.info(note)
    if exp.name == "towers":
        quick_seeds, quick_epochs = QUICK_TOWERS
        if exp.quick:
            overrides = [*QUICK_OVERRIDES, quick_epochs, *exp.overrides]
        return towers.run_towers(exp.data, exp.out, quick_seeds if exp.quick else seeds,
                                 per_class, overrides, recipe=exp.recipe)
    return ablations.run_ablation(exp.name, exp.data, exp.out, 1 if exp.quick else seeds,
                                  per_class, overrides, recipe=exp.recipe,
                                  arms=list(exp.arms) or None)
