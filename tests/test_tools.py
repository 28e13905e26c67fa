"""tools/ship_model.py: a run shipped inside the package, written like every other file."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from alexnet.data.normalization import Preprocessing
from alexnet.engine.checkpoint import save_weights
from alexnet.files import file_sha256
from alexnet.models import build_model
from helpers.paths import REPO


@pytest.fixture
def ship_model(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("ship_model", REPO / "tools" / "ship_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "PRETRAINED", tmp_path / "pretrained")
    return module


def a_run(folder):
    folder.mkdir()
    torch.manual_seed(0)
    save_weights(folder / "last.safetensors", build_model("cifar-4layer", num_classes=2),
                 classes=["a", "b"], preprocessing=Preprocessing(32, 32),
                 extra={"recipe": "cifar10", "config": {"epochs": 1}})
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
