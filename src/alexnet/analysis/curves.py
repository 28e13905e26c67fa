"""Training curves from a run folder's `metrics.csv` (one row per epoch, written by training).

Columns are read by name: `epoch` is the x axis; every other numeric column is a series
(`*loss*` and `*error*` columns and `lr` are drawn; all are summarised). Empty cells (e.g.
no validation that epoch) become NaN and are skipped in the plot.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from alexnet.engine import run_layout as layout
from alexnet.engine.run_files import read_metrics_rows
from alexnet.errors import UserError


def metrics_path(run_dir: str | os.PathLike) -> Path:
    path = Path(run_dir)
    if path.is_file():
        return path
    if not path.is_dir():
        raise UserError(f"run folder {str(path)!r} does not exist")
    if not (path / layout.METRICS).is_file():
        raise UserError(f"run folder {str(path)!r} has no {layout.METRICS} (has it finished an "
                        f"epoch?)")
    return path / layout.METRICS


def read_metrics(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(epochs [R], {column: values [R]}) for the numeric columns of a metrics CSV."""
    path = Path(path)
    rows = read_metrics_rows(path)
    if not rows:
        raise UserError(f"{str(path)!r} holds no rows yet")
    if "epoch" not in rows[0]:
        raise UserError(f"{str(path)!r} has no 'epoch' column (columns: "
                        f"{', '.join(rows[0])})")
    epochs = np.array([r["epoch"] for r in rows])
    series = {}
    for column in rows[0]:
        if column == "epoch":
            continue
        values = np.array([r.get(column, math.nan) for r in rows])
        if not np.isnan(values).all():
            series[column] = values
    return epochs, series


def summarise(epochs: np.ndarray, series: dict[str, np.ndarray]) -> dict:
    """Last value of every column, and the best (lowest) of every loss/error column."""
    summary: dict = {"epochs": int(np.nanmax(epochs)) if len(epochs) else 0,
                     "columns": ["epoch", *series], "last": {}, "best": {}}
    for column, values in series.items():
        valid = ~np.isnan(values)
        summary["last"][column] = float(values[valid][-1])
        if "loss" in column or "error" in column:
            at = int(np.nanargmin(values))
            summary["best"][column] = {"value": float(values[at]), "epoch": float(epochs[at])}
    return summary
