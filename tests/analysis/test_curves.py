"""Training curves from metrics.csv."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from alexnet.cli import main

HEADER = "epoch,train_loss,train_error,val_loss,val_top1_error,val_top5_error,lr,seconds\n"


def write_metrics(run, epochs: int, slope: float) -> None:
    run.mkdir()
    lines = [HEADER]
    for e in range(1, epochs + 1):
        val = "" if e == 2 else f"{1.9 - slope * e:.4f}"  # an epoch without validation
        lines.append(f"{e},{2.3 - slope * e:.4f},{0.9 - slope * e / 3:.4f},{val},"
                     f"{0.8 - slope * e / 3:.4f},{0.5 - slope * e / 4:.4f},{0.01 / e},12.5\n")
    (run / "metrics.csv").write_text("".join(lines))


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
