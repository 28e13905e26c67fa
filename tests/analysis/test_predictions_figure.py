"""`alexnet figures predictions`: images with their top-k bars (paper Fig. 4 left)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.cli import main
from alexnet.data.normalization import Preprocessing
from alexnet.engine.checkpoint import save_weights
from alexnet.models import build_model

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("ckpt") / "net.safetensors"
    save_weights(path, build_model("cifar-4layer"), classes=CLASSES,
                 preprocessing=Preprocessing(32, 32, channel_mean=(120.0,) * 3,
                                             channel_std=(64.0,) * 3))
    return path


def draw(capsys, ckpt, out, *images, top=5):
    code = main(["figures", "predictions", str(ckpt), *map(str, images), "--out", str(out),
                 "--top", str(top), "--json"])
    assert code == 0
    numbers = json.loads(capsys.readouterr().out)
    return numbers, np.asarray(Image.open(out).convert("RGB"), dtype=np.float32)


def test_predictions_figure(ckpt, cifar10_train, tmp_path, capsys):
    cats = [cifar10_train / "cat" / f"000{i}.jpg" for i in range(4)]
    ships = [cifar10_train / "ship" / f"000{i}.jpg" for i in range(4)]
    numbers, a = draw(capsys, ckpt, tmp_path / "a.png", *cats)
    assert [e["file"] for e in numbers["images"]] == [str(f) for f in cats]
    assert all(len(e["top"]) == 5 for e in numbers["images"])
    _, b = draw(capsys, ckpt, tmp_path / "b.png", *ships)
    assert a.shape == b.shape and a.shape[0] > 300 and a.shape[1] > 800   # 4 columns
    assert a.std() > 10 and np.abs(a - b).mean() > 1
    # The true class (the parent folder) is drawn in red when it is among the top-k bars.
    _, full = draw(capsys, ckpt, tmp_path / "c.png", cats[0], top=10)
    red = (full[..., 0] > 150) & (full[..., 1] < 80) & (full[..., 2] < 80)
    assert red.sum() > 20


def test_predictions_figure_skips_broken_files(ckpt, cifar10_train, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    code = main(["figures", "predictions", str(ckpt), str(bad),
                 str(cifar10_train / "dog" / "0000.jpg"), "--out", str(tmp_path / "p.png")])
    assert code == 0 and "bad.jpg" in capsys.readouterr().err
    assert Image.open(tmp_path / "p.png").size[0] > 100
    assert main(["figures", "predictions", str(ckpt), str(bad), "--out",
                 str(tmp_path / "q.png")]) == 2
    assert "none of the images" in capsys.readouterr().err and not (tmp_path / "q.png").exists()


def test_predictions_figure_keeps_an_earlier_one_and_has_a_key(ckpt, tmp_path, capsys,
                                                               monkeypatch):
    from alexnet.analysis import plots
    from helpers.images import gradient, save

    drawn = []
    real_save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi=100: (
        drawn.append(fig), real_save(fig, path, dpi))[-1])
    monkeypatch.chdir(tmp_path)
    image = save(tmp_path / "cat" / "x.png", gradient(40, 40))
    (tmp_path / "predictions.png").write_bytes(b"an earlier figure")
    assert main(["figures", "predictions", str(ckpt), str(image), "--top", "10"]) == 0
    assert "wrote predictions-2.png: 1 image" in capsys.readouterr().err
    assert (tmp_path / "predictions.png").read_bytes() == b"an earlier figure"
    assert (tmp_path / "predictions-2.png").stat().st_size > 1000
    labels = [t.get_text() for legend in drawn[0].legends for t in legend.get_texts()]
    assert labels == ["predicted class (probability)", "the true class (the image's folder "
                      "name)"]
