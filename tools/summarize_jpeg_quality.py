"""Summarise docs/results/jpeg-quality/ into its results.json (a maintainer's step).

    python tools/summarize_jpeg_quality.py

Per-run held-out errors from each run's final.json, the mean of the two seeds per arm, and a
least-squares line of error against the JPEG quantiser step over q75, q50 and q25, whose value
at step 0 estimates the error without quantisation.
"""

from __future__ import annotations

import json
from pathlib import Path

from alexnet.engine import run_layout as layout

root = Path("docs/results/jpeg-quality")
# JPEG quantiser step as a multiple of the standard tables (libjpeg: quality q >= 50 scales
# them by (200 - 2q) / 100, below 50 by 50 / q)
arms = {"q75": 0.5, "q50": 1.0, "q25": 2.0, "chroma": 0.5}
runs, means = {}, {}
for arm in arms:
    for seed, suffix in ((0, ""), (1, "-seed1")):
        held = json.loads((root / f"{arm}{suffix}" / layout.FINAL).read_text())["held_out"]
        runs[f"{arm}{suffix}"] = {"seed": seed, **{v: round(100 * held[v]["top1_error"], 2)
                                                   for v in ("ten", "center")}}
    means[arm] = {v: round(sum(runs[k][v] for k in runs if k.split("-")[0] == arm) / 2, 3)
                  for v in ("ten", "center")}
fit = {}
for view in ("ten", "center"):
    xs = [arms[a] for a in ("q75", "q50", "q25")]
    ys = [means[a][view] for a in ("q75", "q50", "q25")]
    mx, my = sum(xs) / 3, sum(ys) / 3
    slope = (sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
             / sum((x - mx) ** 2 for x in xs))
    at_zero = my - slope * mx
    fit[view] = {"points_per_unit_step": round(slope, 3), "at_zero_step": round(at_zero, 3),
                 "cost_of_quality_75": round(means["q75"][view] - at_zero, 3)}
out = {"what": "held-out top-1 error (%) of cifar-conv-local, cifar10-fast recipe, 60 epochs, "
               "on copies of the shared CIFAR-10 JPEGs degraded by tools/degrade_images.py",
       "quantiser_step": arms, "runs": runs, "mean_of_seeds": means,
       "linear_fit_over_q75_q50_q25": fit}
(root / "results.json").write_text(json.dumps(out, indent=2) + "\n")
print(root / "results.json")
