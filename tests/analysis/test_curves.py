"""Training curves from metrics.csv."""

from __future__ import annotations

import csv
import json

import numpy as np
from PIL import Image

from alexnet.cli import main

# The columns training writes (alexnet.engine.run_files.METRIC_COLUMNS), plus one extra.
COLUMNS = ["epoch", "lr", "train_loss", "train_top1_error", "val_top1_error", "val_top5_error",
           "images_per_s", "epoch_seconds", "lr_dropped", "val_loss"]


def write_metrics(run, epochs: int, slope: float) -> None:
    run.mkdir()
    with open(run / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for e in range(1, epochs + 1):
            validated = e != 2  # an epoch without validation leaves the cells empty
            writer.writerow({
                "epoch": e, "lr": 0.01 if e < 6 else 0.001, "train_loss": 2.3 - slope * e,
                "train_top1_error": 0.9 - slope * e / 3,
                "val_top1_error": 0.8 - slope * e / 3 if validated else "",
                "val_top5_error": 0.5 - slope * e / 4 if validated else "",
                "images_per_s": 1000, "epoch_seconds": 12.5, "lr_dropped": int(e == 6),
                "val_loss": 1.9 - slope * e if validated else ""})


def test_curves_png_and_numbers(tmp_path, capsys):
    write_metrics(tmp_path / "a", 8, 0.1)
    write_metrics(tmp_path / "b", 8, 0.05)
    images = []
    for name in ("a", "b"):
        assert main(["figures", "curves", str(tmp_path / name), "--json"]) == 0
        numbers = json.loads(capsys.readouterr().out)
        png = tmp_path / name / "curves.png"
        assert numbers["png"] == str(png)
        images.append(np.asarray(Image.open(png).convert("RGB"), dtype=np.float32))
    assert numbers["epochs"] == 8
    assert numbers["best"]["val_top1_error"]["epoch"] == 8
    assert abs(numbers["last"]["val_loss"] - (1.9 - 0.4)) < 1e-6
    assert numbers["last"]["lr"] == 0.001 and "lr_dropped" in numbers["columns"]
    assert images[0].shape == images[1].shape and images[0].shape[1] > 1000  # three panels
    assert images[0].std() > 10 and np.abs(images[0] - images[1]).mean() > 0.5


def test_curves_bad_inputs(tmp_path, capsys):
    assert main(["figures", "curves", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["figures", "curves", str(tmp_path / "empty")]) == 2
    assert "metrics.csv" in capsys.readouterr().err
    (tmp_path / "noepoch").mkdir()
    (tmp_path / "noepoch" / "metrics.csv").write_text("step,loss\n1,2.0\n")
    assert main(["figures", "curves", str(tmp_path / "noepoch")]) == 2
    assert "'epoch'" in capsys.readouterr().err


def test_curves_show_whole_epochs_and_errors_in_percent(tmp_path, capsys, monkeypatch):
    """As the command line prints them: errors in %, epochs as whole numbers."""
    from alexnet.analysis import plots

    drawn = []
    real_save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi=100: (
        drawn.append(fig), fig.canvas.draw(), real_save(fig, path, dpi))[-1])
    write_metrics(tmp_path / "run", 3, 0.1)
    assert main(["figures", "curves", str(tmp_path / "run")]) == 0
    assert "best val top-1 error 70.00% at epoch 3" in capsys.readouterr().err
    axes = {ax.get_title(): ax for ax in drawn[0].axes}
    error = axes["error"]
    assert error.get_ylabel() == "error (%)"
    top1 = next(line for line in error.get_lines() if line.get_label() == "val_top1_error")
    assert np.allclose(top1.get_ydata(), [100 * (0.8 - 0.1 / 3), 70.0])
    for ax in drawn[0].axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
