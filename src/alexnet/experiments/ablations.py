"""Paper §3.3 and §3.4 on CIFAR-10, each as comparisons between arms trained alike.

lrn (§3.3, "13% -> 11% test error"): three arms,
- the 11% net: cuda-convnet's layers-conv-local-11pct.cfg (`cifar-conv-local`);
- the 11% net without its two norms (`model.lrn=false`): nothing else changes;
- the 13% net: layers-conv-local-13pct.cfg (`cifar-conv-local-13pct`: no norms, local3 half
  as wide),
and two comparisons: the paper's (13% file -> 11% file, which differ in local3's width as
well as in the norms) and the clean ablation (the 11% net without -> with its norms).

pooling (§3.4, on CIFAR-10 here): the 11% net with overlapping (3/2) or non-overlapping
(2/2) max-pooling.

precision (not the paper's): the 11% net on the CPU fast path (bf16 autocast, channels_last)
and in fp32 NCHW; the fast path must reach the same error within the seeds' spread.

init (§5, with `--recipe imagenet-paper` on a small store): `alexnet-paper` from the paper's
initialisation and from PyTorch's default; whether the loss leaves ln(classes).

Every arm trains with the same recipe and the same seeds; the 13% net keeps its own file's
layer-params (fc10 decay 0.004 instead of the 11% file's 0.01). The test error is the
10-view error on images held out of the 50,000 training images (`val_per_class` per class);
nothing is tuned on them. Each comparison reports the difference of the arms' means and the
per-seed (paired) differences.

Arms can train in separate processes or on separate machines sharing the results folder
(`arms=`, the command line's `--arm`): each trains only its arms; a run with every arm reads
the finished runs instead of training them again and writes the comparisons.
"""

from __future__ import annotations

import re
from pathlib import Path

from alexnet import console
from alexnet.analysis.plots import plot_curves
from alexnet.config import CUDA_CONVNET_DECAY
from alexnet.engine import train as engine_train  # train() looked up per call: tests fake it
from alexnet.errors import one_of
from alexnet.experiments.common import (
    command_line,
    experiment_store,
    final_results,
    make_config,
    mean_and_spread,
    read_history,
    save_results,
)

# experiment -> arm -> (model, model options, other settings)
ARMS = {
    "lrn": {"11% net": ("cifar-conv-local", {"lrn": True}, {}),
            "11% net without its norms": ("cifar-conv-local", {"lrn": False}, {}),
            # each file with its own layer-params: the 13% file decays fc10 by 0.004
            "13% net": ("cifar-conv-local-13pct", {},
                        {"layer_decay": CUDA_CONVNET_DECAY["cifar-conv-local-13pct"]})},
    "pooling": {"overlapping 3/2": ("cifar-conv-local", {"overlap_pool": True}, {}),
                "non-overlapping 2/2": ("cifar-conv-local", {"overlap_pool": False}, {})},
    "precision": {"fast path (bf16, channels_last)": ("cifar-conv-local", {},
                                                      {"amp": "bf16", "channels_last": True}),
                  "fp32, NCHW": ("cifar-conv-local", {}, {"amp": "none",
                                                         "channels_last": False})},
    "init": {"paper's initialisation": ("alexnet-paper", {"init": "paper"}, {}),
             "PyTorch's default": ("alexnet-paper", {"init": "pytorch"}, {}),
             # With 10 classes instead of 1,000 each class's fc8 row gets ~100x the mean
             # gradient, and the paper's lr blows the first steps up: its lr / 10 on the proxy.
             "paper's initialisation, lr / 10": ("alexnet-paper", {"init": "paper"},
                                                 {"lr": 0.001})},
}
# experiment -> [(comparison, baseline arm, arm expected to be better)]
COMPARISONS = {
    "lrn": [("paper: 13% file -> 11% file", "13% net", "11% net"),
            ("ablation: 11% net without -> with its norms", "11% net without its norms",
             "11% net")],
    "pooling": [("non-overlapping -> overlapping pooling", "non-overlapping 2/2",
                 "overlapping 3/2")],
    # expected: no difference beyond the seeds' spread
    "precision": [("fp32 -> bf16 fast path", "fp32, NCHW", "fast path (bf16, channels_last)")],
    "init": [("PyTorch's default -> the paper's initialisation", "PyTorch's default",
              "paper's initialisation"),
             ("the paper's initialisation: lr 0.01 -> 0.001", "paper's initialisation",
              "paper's initialisation, lr / 10")],
}
PAPER = {
    "lrn": "CIFAR-10 test error: 13% without normalisation, 11% with it (paper §3.3)",
    "pooling": "ImageNet: overlapping pooling lowers top-1 error by 0.4% (paper §3.4)",
    "precision": "not the paper's: the CPU fast path (bf16) must train as well as fp32",
    "init": "§5: weights N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6, fc7 (a loss stuck "
            "at ln(classes) is the known failure of reproductions)",
}
def slug(arm: str) -> str:
    """An arm's run-folder name: "11% net without its norms" -> "11pct-net-without-its-norms"."""
    words = re.findall(r"[a-z0-9]+", arm.lower().replace("%", "pct").replace("'", ""))
    return "-".join(words)


def pick_arms(name: str, requested: list[str] | None) -> list[str]:
    """The arms of experiment `name` to train, in the experiment's order: every arm, or those
    `requested` by name ("11% net without its norms") or run-folder name ("11pct-net-...")."""
    if not requested:
        return list(ARMS[name])
    by_slug = {slug(arm): arm for arm in ARMS[name]}
    for wanted in requested:
        if wanted not in ARMS[name] and wanted not in by_slug:
            raise one_of(f"{name} arm", wanted, list(by_slug))
    return [arm for arm in ARMS[name] if arm in requested or slug(arm) in requested]


def run_arm(name: str, arm: str, recipe: str, data: str, out: Path, seeds: int,
            overrides: list[str]) -> dict:
    model, options, settings = ARMS[name][arm]
    errors, runs = {"top1": [], "top5": []}, []
    for seed in range(seeds):
        base = make_config(recipe, data, [], model=model)
        config = make_config(recipe, data, overrides, model=model, seed=seed,
                             model_options={**base.model_options, **options}, **settings)
        run = out / f"{slug(arm)}-seed{seed}"
        summary = engine_train.train(config, run)
        if summary.get("status") == "stopped":
            raise KeyboardInterrupt
        held_out = final_results(run)["held_out"][config.eval_views]
        errors["top1"].append(held_out["top1_error"])
        errors["top5"].append(held_out["top5_error"])
        history = read_history(run)
        runs.append({"seed": seed, "run": str(run), "command": command_line(config, run),
                     **held_out, "center_curve": [row["val_top1_error"] for row in history],
                     "train_loss_curve": [row["train_loss"] for row in history]})
    return {"model": model, "options": options, "recipe": config.recipe,
            "views": config.eval_views, "runs": runs,
            "top1_error": mean_and_spread(errors["top1"]),
            "top5_error": mean_and_spread(errors["top5"])}


def compare(arms: dict, baseline: str, better: str) -> dict:
    """How much lower `better`'s top-1 error is than `baseline`'s: difference of the means
    and the per-seed differences (the same seed trains both)."""
    paired = [b["top1_error"] - a["top1_error"]
              for a, b in zip(arms[better]["runs"], arms[baseline]["runs"], strict=True)]
    return {"baseline": baseline, "better": better,
            "difference_top1": round(arms[baseline]["top1_error"]["mean"]
                                     - arms[better]["top1_error"]["mean"], 6),
            "paired_differences_top1": mean_and_spread(paired)}


def run_ablation(name: str, data: str, out: Path, seeds: int,
                 per_class: int | None = None, overrides: list[str] | None = None,
                 recipe: str = "cifar10", arms: list[str] | None = None) -> dict:
    """Train every arm of experiment `name` (or only `arms`) with `recipe` and `seeds` seeds
    on `data` (or the first `per_class` images of each of its classes); with every arm,
    results.json and a figure."""
    overrides = overrides or []
    chosen = pick_arms(name, arms)
    out.mkdir(parents=True, exist_ok=True)
    size = make_config(recipe, "unused", overrides).data_size
    data = experiment_store(data, out, size, per_class)
    results = {"experiment": name, "paper": PAPER[name], "data": data, "recipe": recipe,
               "seeds": seeds, "variants": {}, "comparisons": {}}
    for arm in chosen:
        results["variants"][arm] = run_arm(name, arm, recipe, data, out, seeds, overrides)
        top1 = results["variants"][arm]["top1_error"]
        spread = f"std {100 * top1['std']:.2f}, {seeds} seeds" if seeds > 1 else "1 seed"
        console.info(f"{name}: {arm}: held-out top-1 error {100 * top1['mean']:.2f}% "
                     f"({spread})")
    if len(chosen) < len(ARMS[name]):
        # Some arms may still be training elsewhere: nothing to compare or save yet.
        console.info(f"{name}: trained {', '.join(slug(arm) for arm in chosen)} only; once "
                     f"every arm has finished, run the experiment again without --arm for "
                     f"the comparisons (finished runs are read, not trained again)")
        return results
    for comparison, baseline, better in COMPARISONS[name]:
        result = compare(results["variants"], baseline, better)
        results["comparisons"][comparison] = result
        console.info(f"{name}: {comparison}: {100 * result['difference_top1']:+.2f} points "
                     f"lower top-1 error with the {better}")
    save_results(out, results)
    if all(run["center_curve"] for v in results["variants"].values() for run in v["runs"]):
        plot_arms(results, out / f"{name}.png")   # (runs without held-out images: no curves)
    return results


def plot_arms(results: dict, path: Path) -> None:
    """Per epoch, each arm's mean over its seeds: held-out error (centre view) and the
    training loss (what leaves ln(classes), or not, in the init experiment)."""
    import numpy as np

    series = {}
    for arm, variant in results["variants"].items():
        for key, label in (("center_curve", "held-out error"), ("train_loss_curve",
                                                               "train loss")):
            runs = [run[key] for run in variant["runs"]]
            length = min(len(curve) for curve in runs)
            series[f"{arm}: {label}"] = np.mean([curve[:length] for curve in runs], axis=0)
    length = min(len(values) for values in series.values())
    plot_curves(np.arange(1, length + 1), {k: v[:length] for k, v in series.items()}, path,
                f"{results['experiment']}: mean of {results['seeds']} seed(s) per arm; "
                f"held-out error on the centre view")
    console.info(f"figure: {path}")
