"""Paper §3.3 and §3.4 on CIFAR-10: the `cifar-conv-local` net with and without its
response normalisation, and with overlapping (3/2) or non-overlapping (2/2) pooling.

Every variant trains with the same `cifar10` recipe and the same seeds; the test error is
the 10-view error on images held out of the 50,000 training images (`val_per_class` per
class). Nothing is tuned on them: the recipe is fixed before any of these runs.
"""

from __future__ import annotations

from pathlib import Path

from alexnet import console
from alexnet.experiments.common import (
    command_line,
    experiment_store,
    final_results,
    make_config,
    mean_and_spread,
    save_results,
)

ABLATIONS = {
    # experiment -> (variant name -> model options)
    "lrn": {"with LRN": {"lrn": True}, "without LRN": {"lrn": False}},
    "pooling": {"overlapping 3/2": {"overlap_pool": True},
                "non-overlapping 2/2": {"overlap_pool": False}},
}
PAPER = {
    "lrn": "CIFAR-10 test error: 13% without normalisation, 11% with it (paper §3.3)",
    "pooling": "ImageNet: overlapping pooling lowers top-1 error by 0.4% (paper §3.4)",
}


def run_ablation(name: str, data: str, out: Path, seeds: int,
                 quick_per_class: int | None = None, overrides: list[str] | None = None) -> dict:
    from alexnet.engine.train import train

    overrides = overrides or []
    out.mkdir(parents=True, exist_ok=True)
    data = experiment_store(data, out, 32, quick_per_class)
    results = {"experiment": name, "paper": PAPER[name], "data": data, "variants": {}}
    for variant, options in ABLATIONS[name].items():
        errors, runs = {"top1": [], "top5": []}, []
        for seed in range(seeds):
            config = make_config("cifar10", data, overrides, model_options=options, seed=seed)
            run = out / f"{variant.replace(' ', '-').replace('/', '')}-seed{seed}"
            summary = train(config, run)
            if summary.get("status") == "stopped":
                raise KeyboardInterrupt
            held_out = final_results(run)["held_out"][config.eval_views]
            errors["top1"].append(held_out["top1_error"])
            errors["top5"].append(held_out["top5_error"])
            runs.append({"seed": seed, "run": str(run), "command": command_line(config, run),
                         **held_out})
        results["variants"][variant] = {
            "options": options, "views": config.eval_views, "runs": runs,
            "top1_error": mean_and_spread(errors["top1"]),
            "top5_error": mean_and_spread(errors["top5"])}
        top1 = results["variants"][variant]["top1_error"]
        spread = f"std {100 * top1['std']:.2f}, {seeds} seeds" if seeds > 1 else "1 seed"
        console.info(f"{name}: {variant}: test top-1 error {100 * top1['mean']:.2f}% "
                     f"({spread})")
    first, second = (results["variants"][v]["top1_error"]["mean"] for v in ABLATIONS[name])
    results["difference_top1"] = round(second - first, 6)  # positive: the first is better
    save_results(out, results)
    return results
