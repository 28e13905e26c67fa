"""Held-out error against wall time for a run folder (the 20-minute comparison).

    python tools/time_to_error.py RUN OUT.png [--target 0.13]

Reads RUN/metrics.csv (epoch_seconds and the centre-view val_top1_error of each epoch) and
RUN/final.json (the 10-view error at the end), draws error against cumulative minutes of
training and prints, as JSON, the curve and when the centre-view error first reached the
target.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from alexnet.engine import run_layout as layout


def time_to_error(run: Path, target: float) -> dict:
    from alexnet.analysis.curves import read_metrics

    epochs, series = read_metrics(run / layout.METRICS)
    minutes = np.cumsum(series["epoch_seconds"]) / 60
    errors = series["val_top1_error"]
    reached = np.flatnonzero(errors <= target)
    final = json.loads((run / layout.FINAL).read_text())
    return {"run": str(run), "target": target,
            "minutes": [round(float(m), 3) for m in minutes],
            "center_error": [float(e) for e in errors],
            "first_reached": None if not len(reached) else
            {"epoch": int(epochs[reached[0]]), "minutes": round(float(minutes[reached[0]]), 2)},
            "final_held_out": final.get("held_out"), "wall_seconds": final.get("wall_seconds")}


def plot(result: dict, path: Path) -> None:
    from alexnet.analysis.plots import _pyplot, save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result["minutes"], [100 * e for e in result["center_error"]],
            label="held-out error, centre view (each epoch)")
    ten = (result["final_held_out"] or {}).get("ten")
    if ten:
        ax.plot([result["minutes"][-1]], [100 * ten["top1_error"]], "o",
                label=f"10 views at the end: {100 * ten['top1_error']:.2f}%")
    ax.axhline(100 * result["target"], color="grey", linestyle=":",
               label=f"{100 * result['target']:g}%")
    ax.set_xlabel("minutes of training (2-core CPU)")
    ax.set_ylabel("top-1 error (%)")
    ax.set_ylim(0, 60)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--target", type=float, default=0.13)
    args = parser.parse_args()
    result = time_to_error(args.run, args.target)
    plot(result, args.out)
    print(json.dumps(result, indent=2))
