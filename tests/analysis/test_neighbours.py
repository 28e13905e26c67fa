"""Nearest training images in pre-logits space, with the feature cache."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.analysis.neighbours import nearest
from alexnet.cli import main
from alexnet.data.normalization import Preprocessing
from alexnet.engine.checkpoint import save_weights
from alexnet.models import build_model

CLASSES = ["airplane", "cat", "ship"]


@pytest.fixture(scope="module")
def store(tmp_path_factory, cifar10_train):
    """A small store of real CIFAR-10 images (3 classes x 12)."""
    from alexnet.data import prepare_store

    root = tmp_path_factory.mktemp("neighbours")
    src = root / "src"
    for name in CLASSES:
        (src / name).mkdir(parents=True)
        for file in sorted((cifar10_train / name).iterdir())[:12]:
            shutil.copy(file, src / name / file.name)
    prepare_store(src, root / "store", size=32, workers=1, progress=False)
    return root / "store", src


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "net.safetensors"
    save_weights(path, build_model("cifar-conv-local", num_classes=3), classes=CLASSES,
                 preprocessing=Preprocessing(32, 24, channel_mean=(120.0,) * 3,
                                             channel_std=(64.0,) * 3))
    return path


def run_neighbours(capsys, ckpt, store, cache, *queries, k=4):
    out = cache.parent / "n.png"
    code = main(["figures", "neighbours", str(ckpt), "--data", str(store), "--query",
                 *map(str, queries), "-k", str(k), "--cache", str(cache), "--out", str(out),
                 "--json", "--device", "cpu"])
    assert code == 0
    return json.loads(capsys.readouterr().out), out


def test_training_image_is_its_own_nearest_neighbour(ckpt, store, tmp_path, capsys):
    store_path, src = store
    queries = [src / "cat" / "0003.jpg", src / "ship" / "0000.jpg"]
    numbers, png = run_neighbours(capsys, ckpt, store_path, tmp_path / "cache", *queries)
    assert numbers["features"]["images"] == 36 and numbers["features"]["cached"] is False
    for query, row in zip(queries, numbers["queries"], strict=True):
        first = row["neighbours"][0]
        assert first["file"].endswith(f"{query.parent.name}/{query.name}")
        assert first["label"] == query.parent.name and first["distance"] == pytest.approx(0,
                                                                                      abs=1e-4)
        distances = [n["distance"] for n in row["neighbours"]]
        assert len(distances) == 4 and distances == sorted(distances) and distances[1] > 0
    image = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32)
    assert image.shape[0] > 150 and image.shape[1] > 400 and image.std() > 10
    # Second query: features come from the cache, same answer.
    again, _ = run_neighbours(capsys, ckpt, store_path, tmp_path / "cache", *queries)
    assert again["features"]["cached"] is True and again["queries"] == numbers["queries"]
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_neighbours_figure_differs_between_queries(ckpt, store, tmp_path, capsys):
    store_path, src = store
    _, a = run_neighbours(capsys, ckpt, store_path, tmp_path / "c", src / "cat" / "0000.jpg")
    shutil.move(a, tmp_path / "a.png")
    _, b = run_neighbours(capsys, ckpt, store_path, tmp_path / "c",
                          src / "airplane" / "0001.jpg")
    a = np.asarray(Image.open(tmp_path / "a.png").convert("RGB"), dtype=np.float32)
    b = np.asarray(Image.open(b).convert("RGB"), dtype=np.float32)
    assert a.shape == b.shape and np.abs(a - b).mean() > 1


def test_nearest_is_exact_and_chunked(monkeypatch):
    import alexnet.analysis.neighbours as nb

    rng = np.random.default_rng(0)
    features = rng.normal(size=(1000, 16)).astype(np.float32)
    queries = np.concatenate([features[[5, 700]], rng.normal(size=(3, 16)).astype(np.float32)])
    monkeypatch.setattr(nb, "CHUNK_ROWS", 128)   # many chunks: the running top-k must merge
    idx, dist = nearest(features, queries, k=5)
    full = np.linalg.norm(features[None].astype(np.float64) - queries[:, None], axis=2)
    assert np.array_equal(idx, np.argsort(full, axis=1, kind="stable")[:, :5])
    assert np.allclose(dist, np.sort(full, axis=1)[:, :5])
    assert idx[0, 0] == 5 and idx[1, 0] == 700 and dist[0, 0] == 0


def test_store_of_another_size_is_refused(ckpt, store, tmp_path, capsys):
    store_path, src = store
    other = tmp_path / "big.safetensors"
    save_weights(other, build_model("cifar-conv-local", num_classes=3), classes=CLASSES,
                 preprocessing=Preprocessing(48, 24))
    code = main(["figures", "neighbours", str(other), "--data", str(store_path), "--query",
                 str(src / "cat" / "0000.jpg"), "--cache", str(tmp_path)])
    assert code == 2 and "32x32" in capsys.readouterr().err


def test_image_folder_as_data_is_prepared_once(ckpt, store, tmp_path, monkeypatch, capsys):
    """--data may be a folder of images: it is prepared into $ALEXNET_CACHE/stores, and the
    features go to $ALEXNET_CACHE/features."""
    _, src = store
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path / "cache"))
    query = src / "airplane" / "0002.jpg"
    code = main(["figures", "neighbours", str(ckpt), "--data", str(src), "--query", str(query),
                 "-k", "2", "--out", str(tmp_path / "n.png"), "--json", "--device", "cpu"])
    assert code == 0
    numbers = json.loads(capsys.readouterr().out)
    assert numbers["queries"][0]["neighbours"][0]["file"].endswith("airplane/0002.jpg")
    assert numbers["features"]["cache"].startswith(str(tmp_path / "cache" / "features"))
    assert any((tmp_path / "cache" / "stores").iterdir())


def test_each_precision_has_its_own_feature_cache(ckpt, store, tmp_path, capsys):
    """bf16 features are not fp32 features: a cache filled in one precision is never read
    for the other, and both find a training image as its own nearest neighbour."""
    store_path, src = store
    query = src / "ship" / "0004.jpg"
    for amp in ("none", "bf16"):
        code = main(["figures", "neighbours", str(ckpt), "--data", str(store_path), "--query",
                     str(query), "-k", "2", "--cache", str(tmp_path / "cache"), "--out",
                     str(tmp_path / f"{amp}.png"), "--json", "--device", "cpu", "--amp", amp])
        assert code == 0
        numbers = json.loads(capsys.readouterr().out)
        assert numbers["features"]["cached"] is False
        assert numbers["queries"][0]["neighbours"][0]["file"].endswith("ship/0004.jpg")
    names = sorted(p.name for p in (tmp_path / "cache").glob("*.npy"))
    assert len(names) == 2 and sum(n.endswith("-bfloat16.npy") for n in names) == 1
