"""Weights files: a model, its classes and preprocessing round-trip; foreign files are refused."""

import pytest
import torch
from safetensors.torch import save_file

from alexnet.data.normalization import IMAGENET_CHANNEL_MEAN, IMAGENET_CHANNEL_STD, Preprocessing
from alexnet.engine.checkpoint import load_model, resolve_checkpoint, save_weights
from alexnet.errors import UserError
from alexnet.files import atomic_path
from alexnet.models import build_model


def test_round_trip_rebuilds_model_classes_and_preprocessing(tmp_path):
    torch.manual_seed(0)
    model = build_model("cifar-4layer", num_classes=3, activation="tanh").eval()
    mean = torch.rand(32, 32, 3) * 255
    path = tmp_path / "run" / "best.safetensors"
    save_weights(path, model, classes=["cat", "dog", "eel"],
                 preprocessing=Preprocessing(size=32, crop=32, mean_image=mean),
                 extra={"val_top1_error": 0.25})
    loaded = load_model(tmp_path / "run")  # a run folder means its best weights
    assert loaded.name == "cifar-4layer" and loaded.classes == ["cat", "dog", "eel"]
    assert loaded.meta == {"val_top1_error": 0.25}
    assert loaded.preprocessing.kind == "mean-image"
    assert torch.equal(loaded.preprocessing.mean_image, mean)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded.model(x), model(x))


def test_per_channel_preprocessing_round_trip(tmp_path):
    pre = Preprocessing(40, 32, channel_mean=IMAGENET_CHANNEL_MEAN,   # 32: the net's input
                        channel_std=IMAGENET_CHANNEL_STD)
    save_weights(tmp_path / "w.safetensors", build_model("cifar-4layer"), classes=list("abcdefghij"),
                 preprocessing=pre)
    loaded = load_model(tmp_path / "w.safetensors").preprocessing
    assert loaded == pre and loaded.kind == "per-channel"


def test_foreign_and_broken_files_are_refused(tmp_path):
    foreign = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(foreign))
    with pytest.raises(UserError, match="not an alexnet weights file"):
        load_model(foreign)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="not a readable alexnet weights file"):
        load_model(broken)
    with pytest.raises(UserError, match="shipped models"):
        resolve_checkpoint(tmp_path / "missing")
    with pytest.raises(UserError, match="holds no checkpoint"):
        resolve_checkpoint(tmp_path)


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half-written")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]  # no temporary left behind


def test_shipped_models_are_checked_against_their_card(tmp_path, monkeypatch):
    import hashlib
    import json

    from alexnet.engine import checkpoint

    monkeypatch.setattr(checkpoint, "PRETRAINED_DIR", tmp_path)
    weights = tmp_path / "tiny.safetensors"
    save_weights(weights, build_model("cifar-4layer"), classes=list("abcdefghij"),
                 preprocessing=Preprocessing(32, 32))
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    (tmp_path / "tiny.json").write_text(json.dumps({"name": "tiny", "sha256": digest}))
    assert checkpoint.shipped_models() == ["tiny"]
    assert load_model("tiny").name == "cifar-4layer"
    (tmp_path / "tiny.json").write_text(json.dumps({"name": "tiny", "sha256": "0" * 64}))
    with pytest.raises(UserError, match="does not match the SHA-256"):
        load_model("tiny")
