"""Drawing the figures with matplotlib (Agg backend: files only, no display needed).

Each `plot_*` function takes plain numbers and arrays, writes one PNG atomically and
returns its path; the numbers come from filters.py, neighbours.py, predictions.py.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alexnet.errors import UserError
from alexnet.files import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    path = Path(path)
    plt = _pyplot()
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return path


def text_width(fig, text: str, fontsize: float) -> float:
    """Width in pixels (at the figure's dpi) of the widest line of `text`."""
    from matplotlib.font_manager import FontProperties

    renderer = fig.canvas.get_renderer()
    font = FontProperties(size=fontsize)
    return max(renderer.get_text_width_height_descent(line, font, ismath=False)[0]
               for line in text.split("\n"))


def shorten_middle(fig, text: str, width_px: float, fontsize: float) -> str:
    """`text` cut in the middle with a visible "…" until it fits `width_px`, keeping its start
    and its end (a file's extension and number)."""
    if text_width(fig, text, fontsize) <= width_px:
        return text
    low, high = 1, len(text) - 1     # characters kept: the most that fit, by bisection
    while low < high:
        keep = (low + high + 1) // 2
        if text_width(fig, _middle(text, keep), fontsize) <= width_px:
            low = keep
        else:
            high = keep - 1
    return _middle(text, low)


def _middle(text: str, keep: int) -> str:
    head = (keep + 1) // 2
    return text[:head] + "…" + text[len(text) - (keep - head):]


def wrap_to_width(fig, text: str, width_px: float, fontsize: float) -> str:
    """`text` broken at spaces into lines that each fit `width_px` (a word longer than a line
    is shortened in the middle)."""
    import textwrap

    if text_width(fig, text, fontsize) <= width_px:
        return text
    for chars in range(len(text) - 1, 0, -1):
        lines = textwrap.wrap(text, chars, break_long_words=False, break_on_hyphens=False)
        if all(text_width(fig, line, fontsize) <= width_px for line in lines):
            return "\n".join(lines)
    return "\n".join(shorten_middle(fig, word, width_px, fontsize) for word in text.split())


def fit_titles(fig, titled: Sequence[tuple], fontsize: float) -> None:
    """Give each (axes, title, title options) its title, every line shortened in the middle to
    the width it may take: up to halfway to the next axes in its row, and to the figure's
    edges. Lays the figure out first (the axes must be in place to measure); lay it out again
    after."""
    fig.tight_layout()
    boxes = [ax.get_window_extent() for ax, *_ in titled]
    for i, ((ax, title, options), box) in enumerate(zip(titled, boxes, strict=True)):
        centre = (box.x0 + box.x1) / 2
        left, right = 0.0, fig.bbox.width
        for j, other in enumerate(boxes):
            # Rows by their centres: image axes' boxes may overlap their neighbours' above.
            if j == i or abs((other.y0 + other.y1) - (box.y0 + box.y1)) / 2 > \
                    min(box.height, other.height) / 2:
                continue   # itself, or not in its row
            halfway = ((other.x0 + other.x1) / 2 + centre) / 2
            left, right = (max(left, halfway), right) if halfway < centre else \
                (left, min(right, halfway))
        room = 0.96 * 2 * min(centre - left, right - centre)
        lines = [shorten_middle(fig, line, room, fontsize) for line in title.split("\n")]
        ax.set_title("\n".join(lines), fontsize=fontsize, **options)


def mosaic(tiles: np.ndarray, columns: int, border: int = 1) -> np.ndarray:
    """Tiles [K, h, w, 3] in [0, 1] -> one image [rows*(h+b)+b, columns*(w+b)+b, 3], white gaps."""
    k, h, w, _ = tiles.shape
    rows = math.ceil(k / columns)
    out = np.ones((rows * (h + border) + border, columns * (w + border) + border, 3),
                  dtype=np.float32)
    for i in range(k):
        r, c = divmod(i, columns)
        top, left = border + r * (h + border), border + c * (w + border)
        out[top:top + h, left:left + w] = tiles[i]
    return out


def plot_filters(towers: Sequence[dict], path: str | os.PathLike, title: str) -> Path:
    """One panel per tower: its kernel mosaic, titled with its colour specificity.

    towers: [{"name", "tiles" [K, h, w, 3] in [0, 1], "colour_specificity"}].
    """
    plt = _pyplot()
    images = [mosaic(t["tiles"], columns=min(8, len(t["tiles"]))) for t in towers]
    height = max(im.shape[0] for im in images)
    width = sum(im.shape[1] for im in images)
    scale = 3.2 / max(height, width / len(images))
    fig, axes = plt.subplots(1, len(towers), squeeze=False,
                             figsize=(max(4.0, width * scale + 1), height * scale + 1.0))
    for ax, tower, image in zip(axes[0], towers, images, strict=True):
        ax.imshow(image, interpolation="nearest")
        label = "all kernels" if tower["name"] == "all" else f"tower {tower['name']}"
        ax.set_title(f"{label} ({len(tower['tiles'])})\ncolour specificity "
                     f"{tower['colour_specificity']:.2f}", fontsize=9)
        ax.axis("off")
    fig.suptitle(wrap_to_width(fig, title, 0.95 * fig.bbox.width, 10), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=150)


def plot_curves(epochs: np.ndarray, series: dict[str, np.ndarray], path: str | os.PathLike,
                title: str) -> Path:
    """Loss, error and learning-rate columns against epoch (panels for the kinds present)."""
    plt = _pyplot()
    groups = {"loss": [k for k in series if "loss" in k],
              "error": [k for k in series if "error" in k or k.endswith("acc")],
              "learning rate": [k for k in series if k == "lr"]}
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        raise UserError(f"no loss, error or lr columns to plot (columns: {', '.join(series)})")
    # Epochs where the schedule divided the learning rate (training writes lr_dropped).
    drops = epochs[series["lr_dropped"] > 0] if "lr_dropped" in series else []
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(groups), squeeze=False, figsize=(4.5 * len(groups), 3.6))
    for ax, (kind, columns) in zip(axes[0], groups.items(), strict=True):
        scale = 100.0 if kind == "error" else 1.0     # percentages, as the CLI prints them
        for column in columns:
            values = series[column]
            keep = ~np.isnan(values)
            ax.plot(epochs[keep], scale * values[keep], label=column,
                    marker="o" if keep.sum() < 30 else None, markersize=3)
        if kind == "error":
            ax.set_ylabel("error (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))    # epochs are whole
        if kind == "learning rate" and np.nanmin([np.nanmin(series[c]) for c in columns]) > 0:
            ax.set_yscale("log")
        for i, epoch in enumerate(drops):
            ax.axvline(epoch, color="grey", linestyle=":", linewidth=1,
                       label="lr / 10" if i == 0 else None)
        ax.set_xlabel("epoch")
        ax.set_title(kind)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(wrap_to_width(fig, title, 0.95 * fig.bbox.width, 10), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_predictions(items: Sequence[dict], path: str | os.PathLike, columns: int = 4) -> Path:
    """Fig. 4 left: each image with its top-k bars underneath.

    items: [{"image" uint8 [H, W, 3], "title", "top": [(label, prob)], "truth": label|None}];
    the bar of the true label (when known) is red, the others blue.
    """
    plt = _pyplot()
    columns = min(columns, len(items))
    rows = math.ceil(len(items) / columns)
    fig, axes = plt.subplots(2 * rows, columns, squeeze=False,
                             figsize=(2.6 * columns, 4.2 * rows),
                             gridspec_kw={"height_ratios": [1.3, 1] * rows})
    for ax in axes.flat:
        ax.axis("off")
    titled = []
    for i, item in enumerate(items):
        r, c = divmod(i, columns)
        image_ax, bar_ax = axes[2 * r, c], axes[2 * r + 1, c]
        image_ax.imshow(item["image"])
        titled.append((image_ax, item["title"], {}))
        labels = [label for label, _ in item["top"]][::-1]
        probs = [prob for _, prob in item["top"]][::-1]
        colours = ["tab:red" if label == item.get("truth") else "tab:blue" for label in labels]
        bar_ax.axis("on")
        bar_ax.barh(range(len(labels)), probs, color=colours)
        bar_ax.set_xlim(0, 1)
        bar_ax.set_yticks(range(len(labels)), [_short(label) for label in labels], fontsize=7)
        bar_ax.tick_params(axis="x", labelsize=7)
    fit_titles(fig, titled, 8)   # long file names: cut in the middle, visibly
    from matplotlib.patches import Patch

    key = [Patch(color="tab:blue", label="predicted class (probability)")]
    if any(item.get("truth") in [label for label, _ in item["top"]] for item in items):
        key.append(Patch(color="tab:red", label="the true class (the image's folder name)"))
    fig.tight_layout(rect=(0, 0.06 / rows, 1, 1))
    fig.legend(handles=key, loc="lower center", ncol=len(key), fontsize=8, frameon=False)
    return save_figure(fig, path)


def plot_neighbours(rows: Sequence[dict], path: str | os.PathLike) -> Path:
    """Fig. 4 right: each query (first column) and its nearest training images.

    rows: [{"image" uint8 [H, W, 3], "title", "neighbours": [{"image", "title"}]}].
    """
    plt = _pyplot()
    columns = 1 + max(len(r["neighbours"]) for r in rows)
    fig, axes = plt.subplots(len(rows), columns, squeeze=False,
                             figsize=(1.8 * columns, 2.2 * len(rows)))
    for ax in axes.flat:
        ax.axis("off")
    titled = []
    for r, row in enumerate(rows):
        axes[r, 0].imshow(row["image"])
        titled.append((axes[r, 0], row["title"], {"color": "tab:red"}))
        for c, neighbour in enumerate(row["neighbours"], start=1):
            axes[r, c].imshow(neighbour["image"])
            titled.append((axes[r, c], neighbour["title"], {}))
    fit_titles(fig, titled, 8)
    fig.tight_layout()
    return save_figure(fig, path)


def _short(label: str, width: int = 22) -> str:
    label = label.split(",")[0]
    return label if len(label) <= width else label[:width - 1] + "…"
