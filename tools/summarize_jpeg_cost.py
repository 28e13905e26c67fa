"""Summarise docs/results/jpeg-cost/ into its results.json (a maintainer's step).

    python tools/summarize_jpeg_cost.py [RESULTS_FOLDER]

The runs: the shipped model's recipe (`cifar10-fast`, `model=cifar-conv-local`) on CIFAR-10's
original training pixels (`orig-s<seed>`) and on the shared JPEG copy of them
(`jpeg-s<seed>`), the same seeds, hence the same held-out pictures (the two copies number each
class's images in the same order: tests/data/test_cifar_copies.py). Per seed the difference
JPEG minus originals is paired (same held-out images, same batches, crops and flips), so the
cost of the JPEG copy is the mean of those differences.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from alexnet.engine import run_layout as layout

VIEWS = ("ten", "center")


def held_out_errors(run: Path) -> dict:
    final = json.loads((run / layout.FINAL).read_text())
    return {v: round(100 * final["held_out"][v]["top1_error"], 2) for v in VIEWS}


def summarize(root: Path) -> dict:
    seeds = sorted(int(p.name.removeprefix("orig-s")) for p in root.glob("orig-s*")
                   if (p / layout.FINAL).is_file()
                   and (root / f"jpeg-s{p.name.removeprefix('orig-s')}" / layout.FINAL).is_file())
    runs, cost = {}, {v: [] for v in VIEWS}
    for seed in seeds:
        pair = {copy: held_out_errors(root / f"{copy}-s{seed}") for copy in ("orig", "jpeg")}
        runs[f"seed {seed}"] = pair
        for view in VIEWS:
            cost[view].append(round(pair["jpeg"][view] - pair["orig"][view], 2))
    config = json.loads((root / f"orig-s{seeds[0]}" / layout.CONFIG).read_text()) if seeds else {}
    return {
        "what": "held-out top-1 error (%) of the shipped model's recipe on CIFAR-10's original "
                "training pixels and on the shared JPEG copy (quality 75, 4:2:0), same seeds and "
                "held-out images; cost = JPEG minus originals, paired by seed",
        "recipe": config.get("recipe"), "model": config.get("model"),
        "epochs": config.get("epochs"), "seeds": seeds, "runs": runs,
        "jpeg_cost_points": {v: {"per_seed": cost[v],
                                 "mean": round(statistics.mean(cost[v]), 2) if cost[v] else None}
                             for v in VIEWS},
        "mean_error": {copy: {v: round(statistics.mean(runs[s][copy][v] for s in runs), 2)
                              for v in VIEWS} for copy in ("orig", "jpeg")} if runs else {},
    }


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results/jpeg-cost")
    (root / "results.json").write_text(json.dumps(summarize(root), indent=2) + "\n")
    print(root / "results.json")
