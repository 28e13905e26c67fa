"""Paper §6.1, Fig. 3 on CIFAR-10: does one tower's conv1 become colour-agnostic and the
other's colour-specific "during every run, independent of initialisation"?

`cifar-towers` (the 11% net cut into the paper's two towers) trains over many seeds in three
arms; seed k draws the same held-out images, batches, crops and flips in every arm (the
initial weights differ: the arms' layers differ in shape):
- split: the paper's connectivity (conv2 and local4 read their own tower only);
- cross: every layer reads both towers (`cross_tower`): the split removed;
- one-tower: one tower of the same total width (`towers=1`, the 11% net itself); its trained
  kernels, halved at random, give the null distribution of the gap.
Every run records conv1's per-kernel colour specificity (`analysis.filters`) at its initial
weights and after every epoch (`train(on_epoch=...)`), so the split arm also answers when
during training the gap opens. The threshold rule that says whether a run specialised is
written in `analysis/tower_gap.py` and was fixed before the arms were run.

Recipe: `cifar10` (the 11% net's layer-params, the file's initialisation, mean-image pixels,
lr 0.003 cosine, 24x24 crops and flips, 10-view test on 5,000 held-out images) for `EPOCHS`
= 20 epochs: conv1's scores leave the random 2/3 within the first epoch, and in a split
trial the gap opened in that epoch and grew slowly after (0.161 -> 0.188 by epoch 7 of 20,
docs/towers.md), while 20 epochs keep 24 runs within a few CPU-hours. Measured on one thread (bf16): 1,840-2,110 training images per CPU-second
for the three arms, about 23 CPU-seconds per epoch of 45,000 images with its validation, so
about 8 minutes per run with the final 10-view test and about 3.2 CPU-hours for 3 arms x 8
seeds (`epochs=30` on the command line: about 4.8). The recommended full run:

    alexnet experiment towers --data /root/stores/cifar10-orig --out runs/experiment-towers \\
        --seeds 8 --threads 1

(or `--data ../shared/data/cifar-10-batches-py`, the same pixels). Each run trains in its own
folder `OUT/<arm>-seed<k>` (resumable with `alexnet train --out` and its printed command);
re-running the experiment skips the runs that finished and continues the others. Results:
`OUT/results.json` and the figures `towers-kernels.png` (Fig. 3 for the split run with the
median gap), `towers-gaps.png` (gap per seed and arm against the null) and
`towers-timeline.png` (gap per epoch).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alexnet import console
from alexnet.analysis import tower_gap
from alexnet.analysis.filters import colour_specificity, first_conv
from alexnet.engine import run_layout as layout
from alexnet.engine import train as engine_train  # train() looked up per call: tests fake it
from alexnet.engine.run_files import git_revision
from alexnet.errors import UserError
from alexnet.experiments import towers_figures
from alexnet.experiments.common import (
    command_line,
    experiment_store,
    final_results,
    make_config,
    mean_and_spread,
    save_results,
)
from alexnet.files import atomic_write_json

MODEL = "cifar-towers"
ARMS = {"split": {}, "cross": {"cross_tower": True}, "one-tower": {"towers": 1}}
NULL_ARM = "one-tower"
EPOCHS = 20
SCORES_FILE = "conv1-scores.json"
HALVES = ("tower a is the first half of conv1's kernels, tower b the second; in the one-tower "
          "arm these halves have no boundary between them (the 11% net's first and last 32)")
PAPER = ("§6.1, Fig. 3: the kernels on GPU 1 are largely colour-agnostic, those on GPU 2 "
         "largely colour-specific; this happens during every run, independent of any "
         "particular random weight initialisation")


class ScoreRecorder:
    """`train`'s on_epoch callback: conv1's per-kernel colour specificity at each epoch
    boundary, kept by epoch in `path` (rewritten whole, atomically: a repeated epoch
    overwrites its entry)."""

    def __init__(self, path: Path):
        self.path = path

    def __call__(self, run) -> None:
        scores = read_scores(self.path)
        scores[run.progress.epoch] = colour_specificity(first_conv(run.model).weight).tolist()
        atomic_write_json(self.path, {"epochs": {str(e): [round(v, 5) for v in s]
                                                 for e, s in sorted(scores.items())}})


def read_scores(path: Path) -> dict[int, list[float]]:
    """epoch -> per-kernel scores recorded by `ScoreRecorder` ({} before the first)."""
    if not path.is_file():
        return {}
    return {int(e): s for e, s in json.loads(path.read_text())["epochs"].items()}


def final_scores(run: Path) -> list[float]:
    """conv1's per-kernel scores in the run's last weights."""
    from safetensors.torch import load_file

    weight = load_file(run / layout.LAST_WEIGHTS)["features.conv1.weight"]
    return [round(float(v), 5) for v in colour_specificity(weight)]


def finished(run: Path, epochs: int) -> bool:
    path = run / layout.FINAL
    return path.is_file() and json.loads(path.read_text()).get("epochs") == epochs


def train_run(arm: str, seed: int, recipe: str, data: str, out: Path,
              overrides: list[str]) -> dict:
    """Train (or continue, or skip when finished) one seed of one arm; its record."""
    base = make_config(recipe, data, [], model=MODEL)
    config = make_config(recipe, data, overrides, model=MODEL, seed=seed, epochs=EPOCHS,
                         model_options={**base.model_options, **ARMS[arm]})
    run = out / f"{arm}-seed{seed}"
    if not finished(run, config.epochs):
        summary = engine_train.train(config, run, on_epoch=ScoreRecorder(run / SCORES_FILE))
        if summary.get("status") == "stopped":
            raise KeyboardInterrupt
    scores = final_scores(run)
    by_epoch = read_scores(run / SCORES_FILE)
    held_out = final_results(run).get("held_out", {})
    rng = np.random.default_rng(seed)
    return {"seed": seed, "run": str(run), "command": command_line(config, run),
            **tower_gap.tower_gap(scores), "relabel_p": tower_gap.relabel_p(scores, rng),
            "per_kernel": scores,
            "held_out": {views: {k: held_out[views][k] for k in ("top1_error", "top5_error")}
                         for views in held_out},
            "by_epoch": {str(e): tower_gap.tower_gap(s) for e, s in sorted(by_epoch.items())},
            "initial_per_kernel": by_epoch.get(0)}


def null_distributions(arms: dict) -> tuple[dict, dict, dict]:
    """The two nulls of the threshold rule: summaries, the threshold, and their samples."""
    trained = np.concatenate([
        tower_gap.random_half_gaps(run["per_kernel"], np.random.default_rng(1000 + run["seed"]))
        for run in arms[NULL_ARM]["runs"]])
    initial = np.concatenate([
        tower_gap.random_half_gaps(run["initial_per_kernel"],
                                   np.random.default_rng(2000 + run["seed"]))
        for arm in arms.values() for run in arm["runs"] if run["initial_per_kernel"]])
    if not len(initial):
        raise UserError(f"no run recorded its initial conv1 kernels ({SCORES_FILE} in its "
                        f"folder, written when the experiment starts the run); start the "
                        f"runs with `alexnet experiment towers` in a new --out folder")
    nulls = {"trained": tower_gap.null_summary(
                 trained, f"random halves of the conv1 kernels of the {NULL_ARM} arm's "
                 f"trained nets ({tower_gap.PARTITIONS} per run)"),
             "initial": tower_gap.null_summary(
                 initial, f"random halves of every run's initial conv1 kernels "
                 f"({tower_gap.PARTITIONS} per run)")}
    return nulls, tower_gap.threshold(trained, initial), {"trained": trained, "initial": initial}


def summarise_arm(arm: dict, limit: float, trained_null: np.ndarray) -> None:
    """Add to `arm` the gap's spread, which tower took colour, the runs that specialised, how
    its mean gap compares with the trained null's, and the held-out errors over its seeds."""
    runs = arm["runs"]
    for run in runs:
        run["specialised"] = run["gap"] > limit
        run["gap_opens_at_epoch"] = tower_gap.opening_epoch(
            {int(e): v["gap"] for e, v in run["by_epoch"].items()}, limit)
    arm["gap"] = mean_and_spread([run["gap"] for run in runs])
    arm["mean_gap_p"] = tower_gap.mean_gap_p([run["gap"] for run in runs], trained_null,
                                             np.random.default_rng(3000))
    arm["colour_tower"] = {t: sum(run["colour_tower"] == t for run in runs) for t in "ab"}
    arm["gap_opens_at_epoch"] = [run["gap_opens_at_epoch"] for run in runs]
    count = sum(run["specialised"] for run in runs)
    arm["specialised"] = {"runs": count, "of": len(runs), "fraction": round(count / len(runs), 4)}
    for views in ("ten", "center"):
        errors = [run["held_out"][views]["top1_error"] for run in runs if views in run["held_out"]]
        arm[f"top1_error_{views}"] = mean_and_spread(errors) if errors else None


def run_towers(data: str, out: Path, seeds: int, per_class: int | None = None,
               overrides: list[str] | None = None, recipe: str = "cifar10") -> dict:
    """Train every arm with `seeds` seeds; results.json and the three figures in `out`."""
    overrides = overrides or []
    out.mkdir(parents=True, exist_ok=True)
    size = make_config(recipe, "unused", overrides).data_size
    store = experiment_store(data, out, size, per_class)
    arms = {}
    for arm, options in ARMS.items():
        arms[arm] = {"model_options": options, "runs": []}
        for seed in range(seeds):
            run = train_run(arm, seed, recipe, store, out, overrides)
            arms[arm]["runs"].append(run)
            ten = run["held_out"].get("ten", {}).get("top1_error")
            console.info(f"towers: {arm} seed {seed}: conv1 colour specificity tower a "
                         f"{run['a']['mean']:.3f}, tower b {run['b']['mean']:.3f}, gap "
                         f"{run['gap']:.3f} (tower {run['colour_tower']} more coloured)"
                         + (f", held-out error {100 * ten:.2f}% (10 views)" if ten is not None
                            else ""))
    nulls, limit, samples = null_distributions(arms)
    for arm in arms.values():
        summarise_arm(arm, limit["value"], samples["trained"])
    results = {"experiment": "towers", "paper": PAPER, "model": MODEL, "data": store,
               "recipe": recipe, "epochs": make_config(recipe, store, overrides,
                                                       epochs=EPOCHS).epochs,
               "overrides": overrides, "seeds": seeds, "git": git_revision(),
               "command": experiment_command(data, out, seeds, per_class, recipe, overrides),
               "threshold": limit, "null": nulls, "halves": HALVES, "arms": arms}
    results["figures"] = towers_figures.draw_all(results, samples, out)
    save_results(out, results)
    for name, arm in arms.items():
        console.info(f"towers: {name}: gap {arm['gap']['mean']:.3f} (mean of {seeds}; "
                     f"p {arm['mean_gap_p']:.4f} against the null); "
                     f"{arm['specialised']['runs']} of {seeds} runs above the threshold "
                     f"{limit['value']:.3f}")
    return results


def experiment_command(data: str, out: Path, seeds: int, per_class: int | None, recipe: str,
                       overrides: list[str]) -> str:
    """The `alexnet experiment` command line that reproduces these results."""
    parts = ["alexnet experiment towers", f"--data {data}", f"--out {out}", f"--seeds {seeds}"]
    if recipe != "cifar10":
        parts.append(f"--recipe {recipe}")
    if per_class:
        parts.append(f"--per-class {per_class}")
    return " ".join(parts + list(overrides))
