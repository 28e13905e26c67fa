"""The towers experiment's figures, from its results (`towers.run_towers`):

- towers-kernels.png: Fig. 3 for the split run with the median gap: both towers' conv1
  kernels side by side, each tile with its colour specificity under it;
- towers-gaps.png: each run's tower gap by arm, beside the two null distributions and the
  threshold;
- towers-timeline.png: the gap after every epoch (split runs in colour, the others grey),
  and the split runs' two towers' mean scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alexnet.analysis import plots  # its functions looked up at each call: tests inspect them
from alexnet.analysis.filters import kernel_tiles
from alexnet.engine import run_layout as layout

COLUMNS = 8
LABEL_ROWS = 3       # white pixel rows under each tile, for its score


def draw_all(results: dict, samples: dict[str, np.ndarray], out: Path) -> dict[str, str]:
    return {"kernels": str(plot_kernels(results, out / "towers-kernels.png")),
            "gaps": str(plot_gaps(results, samples, out / "towers-gaps.png")),
            "timeline": str(plot_timeline(results, out / "towers-timeline.png"))}


def typical_run(runs: list[dict]) -> dict:
    """The run with the median gap (the lower of the middle two for an even count)."""
    ordered = sorted(runs, key=lambda run: run["gap"])
    return ordered[(len(ordered) - 1) // 2]


def plot_kernels(results: dict, path: Path) -> Path:
    from safetensors.torch import load_file

    plt = plots._pyplot()
    run = typical_run(results["arms"]["split"]["runs"])
    weight = load_file(Path(run["run"]) / layout.LAST_WEIGHTS)["features.conv1.weight"].float()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4))
    for ax, name, kernels in zip(axes, "ab", weight.chunk(2), strict=True):
        tiles = kernel_tiles(kernels).numpy()
        k, h, w, _ = tiles.shape
        padded = np.ones((k, h + LABEL_ROWS, w, 3), dtype=np.float32)   # white label strip
        padded[:, :h] = tiles
        ax.imshow(plots.mosaic(padded, COLUMNS), interpolation="nearest")
        scores = run["per_kernel"][:k] if name == "a" else run["per_kernel"][k:]
        for i, score in enumerate(scores):
            row, col = divmod(i, COLUMNS)
            ax.text(1 + col * (w + 1) + (w - 1) / 2, 1 + row * (h + LABEL_ROWS + 1) + h + 1.1,
                    f"{score:.2f}", ha="center", va="center", fontsize=6)
        summary = run[name]
        ax.set_title(f"tower {name}: colour specificity {summary['mean']:.2f}\n(quartiles "
                     f"{summary['q1']:.2f} / {summary['median']:.2f} / {summary['q3']:.2f})",
                     fontsize=9)
        ax.axis("off")
    fig.suptitle(f"conv1 of cifar-towers (split), seed {run['seed']}: the median tower gap "
                 f"({run['gap']:.2f}) of {len(results['arms']['split']['runs'])} runs",
                 fontsize=10)
    fig.tight_layout()
    return plots.save_figure(fig, path, dpi=150)


def plot_gaps(results: dict, samples: dict[str, np.ndarray], path: Path) -> Path:
    """Each run's |gap| by arm (circle: tower a more coloured, triangle: b), the nulls as
    box plots, the threshold as a dashed line."""
    plt = plots._pyplot()
    arms = results["arms"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for x, arm in enumerate(arms.values()):
        runs = arm["runs"]
        offsets = np.linspace(-0.15, 0.15, len(runs)) if len(runs) > 1 else [0.0]
        for offset, run in zip(offsets, runs, strict=True):
            ax.plot(x + offset, run["gap"], "o" if run["colour_tower"] == "a" else "^",
                    color="black" if run["specialised"] else "grey", markersize=5)
    nulls = [("random halves,\ntrained one-tower", samples["trained"]),
             ("random halves,\ninitial kernels", samples["initial"])]
    first = len(arms)
    ax.boxplot([values for _, values in nulls], positions=[first, first + 1], widths=0.4,
               whis=(1, 99), showfliers=False)
    limit = results["threshold"]["value"]
    ax.axhline(limit, color="tab:red", linestyle="--", linewidth=1,
               label=f"threshold {limit:.3f} (the larger 99th percentile of the nulls)")
    highest = max([limit, *(run["gap"] for arm in arms.values() for run in arm["runs"]),
                   *(np.quantile(values, 0.99) for _, values in nulls)])
    ax.set_ylim(0, 1.25 * highest)       # room for the legend above the points
    ax.set_xticks(range(first + 2), [*arms, *(label for label, _ in nulls)], fontsize=8)
    ax.set_ylabel("tower gap |a - b| of conv1 colour specificity")
    ax.set_title(f"cifar-towers, {results['seeds']} seed(s) per arm, {results['epochs']} "
                 f"epoch(s); circle: tower a more coloured, triangle: tower b", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return plots.save_figure(fig, path, dpi=120)


def plot_timeline(results: dict, path: Path) -> Path:
    """Left: |gap| after each epoch for every run. Right: the split runs' towers' means,
    the tower that ends more coloured solid, the other dashed."""
    plt = plots._pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for name, arm in results["arms"].items():
        for run in arm["runs"]:
            epochs = sorted(int(e) for e in run["by_epoch"])
            gaps = [run["by_epoch"][str(e)]["gap"] for e in epochs]
            split = name == "split"
            colour = colours[run["seed"] % len(colours)] if split else "grey"
            left.plot(epochs, gaps, color=colour, linewidth=1.2 if split else 0.7,
                      linestyle="-" if split else (":" if name == "one-tower" else "--"),
                      label=f"split seed {run['seed']}" if split else None)
            if split:
                for tower in "ab":
                    means = [run["by_epoch"][str(e)][tower]["mean"] for e in epochs]
                    right.plot(epochs, means, color=colour,
                               linestyle="-" if tower == run["colour_tower"] else "--")
    left.axhline(results["threshold"]["value"], color="tab:red", linestyle="--", linewidth=1)
    left.set_title("tower gap after each epoch (split in colour;\ncross dashed, one-tower "
                   "dotted, grey; red: threshold)", fontsize=9)
    right.axhline(2 / 3, color="grey", linestyle=":", linewidth=1)
    right.set_title("split runs: each tower's mean colour specificity\n(solid: the tower that "
                    "ends more coloured; dotted: random 2/3)", fontsize=9)
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch (0: initial weights)")
        ax.grid(alpha=0.3)
    if len(results["arms"]["split"]["runs"]) <= 10:
        left.legend(fontsize=7)
    fig.tight_layout()
    return plots.save_figure(fig, path, dpi=120)
