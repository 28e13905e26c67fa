"""conv1 kernels: the colour-specificity score and the filters figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.analysis.filters import colour_specificity, filter_report, kernel_tiles
from alexnet.cli import main
from alexnet.data.normalization import Preprocessing
from alexnet.engine.checkpoint import save_weights
from alexnet.models import build_model


def grey_bank(k: int = 48, size: int = 11) -> torch.Tensor:
    """Kernels with the same weights in R, G and B (luminance detectors)."""
    return torch.randn(k, 1, size, size).expand(k, 3, size, size).clone()


def colour_bank(k: int = 48, size: int = 11) -> torch.Tensor:
    """Colour-opponent kernels: a blob in one channel minus the same blob in another."""
    blob = torch.randn(k, size, size)
    bank = torch.zeros(k, 3, size, size)
    for i in range(k):
        a, b = i % 3, (i + 1) % 3
        bank[i, a], bank[i, b] = blob[i], -blob[i]
    return bank


def test_score_separates_grey_from_colour_banks():
    torch.manual_seed(0)
    grey, colour = colour_specificity(grey_bank()), colour_specificity(colour_bank())
    assert grey.max() < 1e-6
    assert colour.min() > 0.99
    assert colour_specificity(torch.randn(4000, 3, 5, 5)).mean() == pytest.approx(2 / 3, abs=0.01)
    # A mostly grey kernel with a little colour lands in between, on the grey side.
    mixed = grey_bank(8) + 0.2 * colour_bank(8)
    assert 0 < float(colour_specificity(mixed).mean()) < 0.2


def test_two_tower_report_splits_conv1_in_halves():
    torch.manual_seed(0)
    model = build_model("alexnet-paper", num_classes=10, init="pytorch")
    with torch.no_grad():
        model.features.conv1.weight.copy_(torch.cat([grey_bank(), colour_bank()]))
    report = filter_report(model)
    a, b = report["towers"]
    assert (a["name"], b["name"]) == ("a", "b")
    assert a["kernels"].shape == b["kernels"].shape == (48, 3, 11, 11)
    assert a["colour_specificity"] < 0.01 and b["colour_specificity"] > 0.99
    one = filter_report(build_model("alexnet-paper", num_classes=10, towers=1, init="pytorch"))
    assert [t["name"] for t in one["towers"]] == ["all"]


def test_tiles_keep_grey_kernels_grey():
    tiles = kernel_tiles(grey_bank(4, 5))
    assert tiles.shape == (4, 5, 5, 3) and tiles.min() >= 0 and tiles.max() <= 1
    assert torch.allclose(tiles[..., 0], tiles[..., 1]) and torch.allclose(tiles[..., 1],
                                                                           tiles[..., 2])


def _checkpoint(path, bank: torch.Tensor):
    model = build_model("cifar-conv-local")
    with torch.no_grad():
        model.features.conv1.weight.copy_(bank)
    save_weights(path, model, classes=[f"c{i}" for i in range(10)],
                 preprocessing=Preprocessing(32, 24))
    return path


def test_filters_figure_png_content(tmp_path, capsys):
    torch.manual_seed(0)
    pngs = {}
    for name, bank in (("grey", grey_bank(64, 5)), ("colour", colour_bank(64, 5))):
        ckpt = _checkpoint(tmp_path / f"{name}.safetensors", bank)
        out = tmp_path / f"{name}.png"
        assert main(["figures", "filters", str(ckpt), "--out", str(out), "--json"]) == 0
        numbers = json.loads(capsys.readouterr().out)
        assert numbers["png"] == str(out) and len(numbers["towers"]) == 1
        assert len(numbers["towers"][0]["per_kernel"]) == 64
        pngs[name] = (numbers["towers"][0]["colour_specificity"],
                      np.asarray(Image.open(out).convert("RGB"), dtype=np.float32))
    (grey_score, grey), (colour_score, colour) = pngs["grey"], pngs["colour"]
    assert grey_score < 0.01 < 0.99 < colour_score
    assert grey.shape == colour.shape and grey.shape[0] > 200 and grey.shape[1] > 200
    assert grey.std() > 10                                   # not blank
    saturation = lambda im: (im.max(axis=2) - im.min(axis=2)).mean()  # noqa: E731
    assert saturation(colour) > 3 * saturation(grey) + 1     # the colour shows in the pixels
    assert np.abs(grey - colour).mean() > 1


def test_filters_of_missing_checkpoint_is_one_sentence(tmp_path, capsys):
    assert main(["figures", "filters", str(tmp_path / "none.safetensors")]) == 2
    assert "none.safetensors" in capsys.readouterr().err
