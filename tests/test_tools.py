"""The maintainer's tools: ship_model.py (a run shipped inside the package, written like every
other file) and degrade_images.py (controlled copies of an image tree)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.data.normalization import Preprocessing
from alexnet.engine.checkpoint import save_weights
from alexnet.files import file_sha256
from alexnet.models import build_model
from helpers.images import image_folder, save
from helpers.paths import REPO


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def ship_model(tmp_path, monkeypatch):
    module = load_tool("ship_model")
    monkeypatch.setattr(module, "PRETRAINED", tmp_path / "pretrained")
    return module


def a_run(folder, data=None):
    folder.mkdir()
    torch.manual_seed(0)
    save_weights(folder / "last.safetensors", build_model("cifar-4layer", num_classes=2),
                 classes=["a", "b"], preprocessing=Preprocessing(32, 32),
                 extra={"recipe": "cifar10", "config": {"epochs": 1, "data": data}})
    (folder / "final.json").write_text(json.dumps({"held_out": {"center": {"images": 2}}}))
    (folder / "run.json").write_text(json.dumps({"starts": [{"argv": ["alexnet", "train"]}]}))
    return folder


def test_a_shipped_model_and_its_card_carry_its_sha256(ship_model, tmp_path, capsys):
    ship_model.main(str(a_run(tmp_path / "run")), "tiny")
    weights = tmp_path / "pretrained" / "tiny.safetensors"
    card = json.loads((tmp_path / "pretrained" / "tiny.json").read_text())
    assert card["sha256"] == file_sha256(weights) == file_sha256(tmp_path / "run" /
                                                                 "last.safetensors")
    assert card["command"] == "alexnet train" and card["classes"] == ["a", "b"]
    assert sorted(p.name for p in (tmp_path / "pretrained").iterdir()) == ["tiny.json",
                                                                         "tiny.safetensors"]


def test_the_card_says_which_images_the_model_trained_on(ship_model, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "manifest.json").write_text(json.dumps({
        "format": "alexnet-store", "count": 4, "encoding": "raw",
        "source": "data/cifar-10-batches-py", "source_kind": "cifar10-python"}))
    ship_model.main(str(a_run(tmp_path / "run", data=str(store))), "tiny")
    card = json.loads((tmp_path / "pretrained" / "tiny.json").read_text())
    assert card["data"] == {"store": str(store), "images": 4, "encoding": "raw",
                            "source": "data/cifar-10-batches-py",
                            "source_kind": "cifar10-python"}
    # a store deleted since: the card says nothing rather than guessing
    shutil.rmtree(store)
    ship_model.main(str(tmp_path / "run"), "tiny")
    assert json.loads((tmp_path / "pretrained" / "tiny.json").read_text())["data"] is None


def test_a_failed_copy_leaves_the_shipped_model_as_it_was(ship_model, tmp_path, monkeypatch):
    ship_model.main(str(a_run(tmp_path / "run")), "tiny")
    weights = tmp_path / "pretrained" / "tiny.safetensors"
    before = weights.read_bytes()

    def half_then_full_disk(src, dst):
        Path(dst).write_bytes(Path(src).read_bytes()[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", half_then_full_disk)
    with pytest.raises(OSError):
        ship_model.main(str(tmp_path / "run"), "tiny")
    assert weights.read_bytes() == before
    assert sorted(p.name for p in weights.parent.iterdir()) == ["tiny.json", "tiny.safetensors"]


def test_degraded_copies_keep_every_name_and_change_only_what_they_say(tmp_path):
    degrade = load_tool("degrade_images")
    src = image_folder(tmp_path / "src", per_class=2)
    # colour that changes from pixel to pixel, which halving its resolution must blur
    save(src / "ant" / "noise.jpg",
         np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    (src / "notes.txt").write_text("not an image")
    names = sorted(str(p.relative_to(src).with_suffix(".jpg")) for p in src.rglob("*.*")
                   if p.suffix != ".txt")
    assert degrade.degrade_tree(src, tmp_path / "q25", 25, chroma=False) == len(names) == 7
    assert sorted(str(p.relative_to(tmp_path / "q25"))
                  for p in (tmp_path / "q25").rglob("*.*")) == names
    assert degrade.degrade_tree(src, tmp_path / "chroma", None, chroma=True) == 7
    before = np.asarray(Image.open(src / "ant/noise.jpg").convert("YCbCr"), dtype=float)
    after = np.asarray(Image.open(tmp_path / "chroma/ant/noise.png").convert("YCbCr"), dtype=float)
    luma_change, colour_change = np.abs(after[..., 0] - before[..., 0]).mean(), \
        np.abs(after[..., 1:] - before[..., 1:]).mean()
    assert luma_change < 3 < colour_change  # brightness kept (up to rounding), colour blurred
    colour = after[..., 1]
    assert np.abs(np.diff(colour, axis=1)).mean() < np.abs(np.diff(before[..., 1], axis=1)).mean()


def test_the_jpeg_cost_is_paired_by_seed(tmp_path):
    tool = load_tool("summarize_jpeg_cost")
    errors = {("orig", 0): (0.13, 0.15), ("jpeg", 0): (0.145, 0.17),
              ("orig", 1): (0.12, 0.14), ("jpeg", 1): (0.13, 0.155)}
    for (copy, seed), (ten, center) in errors.items():
        run = tmp_path / f"{copy}-s{seed}"
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"recipe": "cifar10-fast", "epochs": 120,
                                                     "model": "cifar-conv-local"}))
        (run / "final.json").write_text(json.dumps({"held_out": {
            "ten": {"top1_error": ten}, "center": {"top1_error": center}}}))
    (tmp_path / "orig-s2").mkdir()     # a run without its pair (or unfinished) is left out
    result = tool.summarize(tmp_path)
    assert result["seeds"] == [0, 1] and result["epochs"] == 120
    assert result["jpeg_cost_points"]["ten"] == {"per_seed": [1.5, 1.0], "mean": 1.25}
    assert result["jpeg_cost_points"]["center"]["per_seed"] == [2.0, 1.5]
    assert result["mean_error"]["orig"]["ten"] == 12.5


def _imagenette_run(root, name, held, curve, wall=3600.0):
    """A finished run folder: held {view: (top1, top5)} on 500 held-out images; curve
    [(train_loss, train_top1, val_top1)] per epoch."""
    run = root / name
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"recipe": "imagenet-paper", "epochs": len(curve),
                                                 "model": "alexnet-paper", "lr": 0.001}))
    (run / "final.json").write_text(json.dumps({
        "epochs": len(curve), "wall_seconds": wall, "held_out_images": 500,
        "held_out": {v: {"top1_error": t1, "top5_error": t5} for v, (t1, t5) in held.items()}}))
    rows = ["epoch,lr,train_loss,train_top1_error,val_top1_error"] + [
        f"{i},0.001,{loss},{train},{val}" for i, (loss, train, val) in enumerate(curve, 1)]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    return run


def test_the_imagenette_summary_pairs_views_seeds_and_the_ensemble(tmp_path):
    tool = load_tool("summarize_imagenette")
    curve = [(2.0, 0.8, 0.7), (1.5, 0.5, 0.45), (1.0, 0.3, 0.35)]
    for seed, (ten, center) in enumerate([(0.30, 0.32), (0.28, 0.31)]):
        _imagenette_run(tmp_path, f"paper-lr0.001-s{seed}",
                        {"ten": (ten, 0.04), "center": (center, 0.05)}, curve)
    (tmp_path / "paper-lr0.001-s2").mkdir()         # unfinished: left out
    for view, members, together in (("ten", (0.33, 0.31), 0.29), ("center", (0.34, 0.33), 0.30)):
        (tmp_path / f"ensemble-{view}.json").write_text(json.dumps({
            "members": [{"checkpoint": f"/runs/paper-lr0.001-s{s}/best.safetensors",
                         "top1_error": e, "top5_error": 0.05} for s, e in enumerate(members)],
            "ensemble": {"top1_error": together, "top5_error": 0.04}}))
    # 9,500 images in the store, 500 held out at 32% (centre): 2,000 wrong of the 9,000 others.
    (tmp_path / "paper-lr0.001-s0" / "train-store-center-last.json").write_text(json.dumps(
        {"top1_error": (2000 + 160) / 9500, "top5_error": 0.0, "images": 9500}))
    result = tool.summarize(tmp_path)
    assert result["seeds"] == [0, 1] and result["lr"] == 0.001
    seed0 = result["runs"]["seed 0"]
    assert seed0["val_split"]["ten"] == {"top1": 33.0, "top5": 5.0}
    assert seed0["trained_on_center_top1"] == pytest.approx(22.22)
    assert seed0["first_epoch_held_out_center_top1"] == {"<= 60%": 2, "<= 50%": 2, "<= 40%": 3}
    assert result["baseline"]["val_split"]["ten"]["top1"]["mean"] == 32.0
    gain = result["ten_patches_vs_centre"]
    assert gain["val_split_top1_points"]["per_seed"] == [1.0, 2.0]
    assert gain["held_out_500_top1_points"]["per_seed"] == [2.0, 3.0]
    assert result["ensemble"]["ten"]["ensemble"]["top1"] == 29.0
    assert result["ensemble"]["ten"]["gain_over_mean_member_top1_points"] == 3.0
    assert result["dropout"] is None and result["lrn"] is None
    assert result["stalled_at_the_papers_lr"] is None
