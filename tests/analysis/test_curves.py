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
