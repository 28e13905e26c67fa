"""prepare_store / open_store / ensure_store / `alexnet prepare`: the store end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from alexnet.cli import main
from alexnet.data import ensure_store, open_store, prepare_store
from alexnet.data.prepare import SourceOptions
from alexnet.errors import UserError
from helpers.images import gradient, image_folder, reference, save
from helpers.interrupt import interrupt_prepare


def _folder(root: Path, per_class: int = 6, bad: bool = False) -> Path:
    return image_folder(root, per_class, suffix=".jpg", bad=bad, grey=bad)


def test_store_holds_the_reference_pixels_labels_and_stats(tmp_path):
    src = _folder(tmp_path / "src")
    summary = prepare_store(src, tmp_path / "store", size=16, workers=1, progress=False)
    store = open_store(tmp_path / "store")
    assert summary["images"] == len(store) == 18 and summary["skipped"] == []
    assert store.images.shape == (18, 16, 16, 3) and store.images.dtype == np.uint8
    assert store.classes == store.class_names == ["ant", "bee", "cow"]
    assert store.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    for k in (0, 7, 17):
        assert np.abs(store.images[k].astype(int) - reference(src / store.files[k], 16)).mean() < 1
    pixels = np.asarray(store.images, np.float64)
    assert np.allclose(store.mean, pixels.mean(0), atol=1e-3)
    cov = np.cov(pixels.reshape(-1, 3).T, bias=True)
    assert np.allclose(store.covariance, cov, rtol=1e-6, atol=1e-6)
    rebuilt = store.eigvecs @ np.diag(store.eigvals) @ store.eigvecs.T
    assert np.allclose(rebuilt, cov, rtol=1e-3, atol=1e-2)
    assert list(store.eigvals) == sorted(store.eigvals, reverse=True)
    pre = store.preprocessing(12)
    assert pre.crop == 12 and tuple(pre.mean_image.shape) == (16, 16, 3)


def test_awkward_files_are_reported_not_fatal(tmp_path):
    src = _folder(tmp_path / "src", per_class=2, bad=True)
    summary = prepare_store(src, tmp_path / "store", size=16, workers=1, progress=False)
    reasons = {item["file"]: item["reason"] for item in summary["skipped"]}
    assert set(reasons) == {"bee/empty.jpg", "cow/bomb.png"}
    assert "empty" in reasons["bee/empty.jpg"] and "bomb" in reasons["cow/bomb.png"]
    assert any(c["file"] == "ant/grey.png" for c in summary["converted"])
    store = open_store(tmp_path / "store")
    assert len(store) == 7 and "bee/empty.jpg" not in store.files
    for k, f in enumerate(store.files):   # rows moved over the holes stay with their files
        assert np.abs(store.images[k].astype(int) - reference(src / f, 16)).mean() < 1
    assert store.manifest["skipped"] == summary["skipped"]
    with pytest.raises(UserError) as err:
        prepare_store(src, tmp_path / "store", size=16, strict=True, progress=False)
    assert err.value.exit_code == 1


def test_rerun_does_nothing_and_other_size_is_refused(tmp_path):
    src = _folder(tmp_path / "src", per_class=2)
    prepare_store(src, tmp_path / "store", size=16, workers=1, progress=False)
    stamp = os.stat(tmp_path / "store" / "images.u8").st_mtime_ns
    again = prepare_store(src, tmp_path / "store", size=16, workers=1, progress=False)
    assert again["status"] == "already prepared" and again["images"] == 6
    assert os.stat(tmp_path / "store" / "images.u8").st_mtime_ns == stamp
    with pytest.raises(UserError, match="16x16"):
        prepare_store(src, tmp_path / "store", size=32, progress=False)
    other = _folder(tmp_path / "other", per_class=1)
    with pytest.raises(UserError, match="already holds a store prepared from"):
        prepare_store(other, tmp_path / "store", size=16, progress=False)


def test_interrupted_prepare_resumes_and_matches_a_fresh_one(tmp_path, monkeypatch):
    src = _folder(tmp_path / "src", per_class=20, bad=True)
    fresh = prepare_store(src, tmp_path / "fresh", size=16, workers=1, progress=False)
    interrupt_prepare(monkeypatch, src, tmp_path / "store", size=16, workers=1, progress=False)
    assert not (tmp_path / "store").exists()          # nothing half-made under the real name
    with pytest.raises(UserError, match="unfinished prepare"):
        open_store(tmp_path / "store")
    resumed = prepare_store(src, tmp_path / "store", size=16, workers=1, progress=False)
    assert 0 < resumed["resumed_from"] < 61
    a, b = open_store(tmp_path / "fresh"), open_store(tmp_path / "store")
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert a.files == b.files and np.allclose(a.mean, b.mean) and np.allclose(a.eigvals, b.eigvals)
    assert resumed["skipped"] == fresh["skipped"]


def test_worker_processes_give_the_same_store(tmp_path):
    src = _folder(tmp_path / "src", per_class=12)
    prepare_store(src, tmp_path / "one", size=16, workers=1, progress=False)
    prepare_store(src, tmp_path / "two", size=16, workers=2, progress=False)
    a, b = open_store(tmp_path / "one"), open_store(tmp_path / "two")
    assert np.array_equal(a.images, b.images) and np.allclose(a.covariance, b.covariance)


def test_real_imagenet_files_match_the_pil_reference(tmp_path, imagenet_samples):
    src = tmp_path / "src"
    src.mkdir()
    picked = sorted(imagenet_samples.iterdir())[::25]              # 30 real JPEGs
    for f in picked:
        (src / f.name).symlink_to(f)
    prepare_store(src, tmp_path / "store", size=256, workers=1, progress=False)
    store = open_store(tmp_path / "store")
    assert len(store) == len(picked)
    errors = [np.abs(store.images[k].astype(int) - reference(src / f, 256)).mean()
              for k, f in enumerate(store.files)]
    assert np.mean(errors) < 1.0 and max(errors) < 1.0


def test_real_cifar_files_are_stored_as_they_are(tmp_path, cifar10_train):
    from PIL import Image

    src = tmp_path / "src"
    for cls in ("cat", "ship"):
        (src / cls).mkdir(parents=True)
        for f in sorted((cifar10_train / cls).iterdir())[:10]:
            (src / cls / f.name).symlink_to(f)
    prepare_store(src, tmp_path / "store", size=32, workers=1, progress=False)
    store = open_store(tmp_path / "store")
    assert store.classes == ["cat", "ship"] and len(store) == 20
    for k, f in enumerate(store.files):
        assert np.array_equal(store.images[k], np.asarray(Image.open(src / f).convert("RGB")))


def test_cli_json_summary_and_strict_exit(tmp_path, capsys):
    src = _folder(tmp_path / "src", per_class=2, bad=True)
    code = main(["prepare", str(src), str(tmp_path / "store"), "--size", "16", "--workers", "1",
                 "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["images"] == 7 and summary["num_classes"] == 3
    assert {s["file"] for s in summary["skipped"]} == {"bee/empty.jpg", "cow/bomb.png"}
    assert main(["prepare", str(src), str(tmp_path / "store"), "--size", "16", "--strict"]) == 1
    assert "skipped bee/empty.jpg" in capsys.readouterr().err
    # --strict --json: the summary still printed, then the library's one sentence
    assert main(["prepare", str(src), str(tmp_path / "store"), "--size", "16", "--strict",
                 "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "already prepared"
    assert captured.err.strip().endswith(f"2 files were skipped (see the manifest in "
                                         f"{tmp_path / 'store'})")
    assert main(["prepare", str(tmp_path / "nope"), str(tmp_path / "x")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_ensure_store_prepares_once_into_the_cache(tmp_path):
    src = _folder(tmp_path / "src", per_class=2)
    store = ensure_store(src, 16, cache_dir=tmp_path / "cache")
    assert len(store) == 6 and store.path.parent == tmp_path / "cache"
    assert ensure_store(src, 16, cache_dir=tmp_path / "cache").path == store.path
    assert ensure_store(store.path, 16).path == store.path
    with pytest.raises(UserError, match="--size 32"):
        ensure_store(store.path, 32)


def test_open_store_errors_name_the_path(tmp_path):
    with pytest.raises(UserError, match="no store at"):
        open_store(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserError, match="not a prepared store"):
        open_store(tmp_path / "plain")
    with pytest.raises(UserError, match="not a store"):
        save(tmp_path / "full" / "x.jpg", gradient(8, 8))
        prepare_store(tmp_path / "plain", tmp_path / "full", size=8, progress=False)


def test_validation_folder_follows_the_training_class_list(tmp_path):
    train = _folder(tmp_path / "train", per_class=1)               # ant, bee, cow
    prepare_store(train, tmp_path / "train-store", size=16, workers=1, progress=False)
    save(tmp_path / "val" / "cow" / "x.jpg", gradient(20, 20))      # only the last class
    val = prepare_store(tmp_path / "val", tmp_path / "val-store", size=16, progress=False,
                        source=SourceOptions(classes=tmp_path / "train-store"))
    store = open_store(tmp_path / "val-store")
    assert store.classes == ["ant", "bee", "cow"] and store.labels.tolist() == [2]
    assert val["per_class"] == [0, 0, 1]
    (tmp_path / "list.txt").write_text("ant an ant\nbee\n")
    with pytest.raises(UserError, match="not in the given class list"):
        prepare_store(tmp_path / "val", tmp_path / "v2", size=16,
                      source=SourceOptions(classes=tmp_path / "list.txt"))
    assert main(["prepare", str(tmp_path / "val"), str(tmp_path / "v3"), "--size", "16",
                 "--classes", str(tmp_path / "train-store")]) == 0
