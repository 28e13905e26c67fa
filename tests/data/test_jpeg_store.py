"""The compressed (JPEG) store: prepare --format jpeg, JpegImages, the loader reading it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from alexnet.cli import main
from alexnet.data import open_store, prepare_store
from alexnet.data.jpeg import decode_batch
from alexnet.data.loader import StoreLoader
from alexnet.errors import UserError
from helpers.images import image_folder
from helpers.interrupt import interrupt_prepare


def _folder(root: Path, per_class: int = 5, bad: bool = False) -> Path:
    return image_folder(root, per_class, bad=bad)


def _pair(tmp_path, quality=95, **kwargs):
    src = _folder(tmp_path / "src", **kwargs)
    prepare_store(src, tmp_path / "raw", size=32, workers=1, progress=False)
    prepare_store(src, tmp_path / "jpeg", size=32, workers=1, progress=False,
                  encoding="jpeg", quality=quality)
    return open_store(tmp_path / "raw"), open_store(tmp_path / "jpeg")


def test_jpeg_store_reads_back_the_raw_stores_images_labels_and_stats(tmp_path):
    raw, jpeg = _pair(tmp_path)
    assert jpeg.encoding == "jpeg" and raw.encoding == "raw"
    assert jpeg.images.shape == raw.images.shape == (15, 32, 32, 3)
    assert jpeg.labels.tolist() == raw.labels.tolist() and jpeg.files == raw.files
    # statistics are those of the pixels before encoding: the raw store's exactly
    assert np.array_equal(jpeg.mean, raw.mean) and np.allclose(jpeg.eigvecs, raw.eigvecs)
    decoded = np.asarray(jpeg.images)
    assert decoded.dtype == np.uint8 and decoded.shape == raw.images.shape
    assert np.abs(decoded.astype(int) - np.asarray(raw.images)).mean() < 3  # JPEG loss only
    assert jpeg.manifest["jpeg_quality"] == 95
    assert (tmp_path / "jpeg" / "images.jpg").stat().st_size == jpeg.manifest["jpeg_bytes"]


def test_indexing_matches_a_numpy_array_of_the_decoded_images(tmp_path):
    _, jpeg = _pair(tmp_path)
    every = np.asarray(jpeg.images)
    assert np.array_equal(jpeg.images[3], every[3])
    assert np.array_equal(jpeg.images[-1], every[-1])
    assert np.array_equal(jpeg.images[2:9:3], every[2:9:3])
    assert np.array_equal(jpeg.images[np.array([7, 1, 7])], every[[7, 1, 7]])
    assert np.array_equal(jpeg.images[every[:, 0, 0, 0] > 100], every[every[:, 0, 0, 0] > 100])
    assert jpeg.images[5:5].shape == (0, 32, 32, 3)
    with pytest.raises(IndexError):
        jpeg.images[15]


def test_skipped_files_leave_no_bytes_and_rows_stay_with_their_files(tmp_path):
    raw, jpeg = _pair(tmp_path, bad=True)
    assert {s["file"] for s in jpeg.skipped} == {"bee/empty.jpg", "cow/bomb.png"}
    assert jpeg.files == raw.files and len(jpeg) == 15
    assert np.abs(np.asarray(jpeg.images).astype(int) - np.asarray(raw.images)).mean() < 3


def test_interrupted_jpeg_prepare_resumes_and_matches_a_fresh_one(tmp_path, monkeypatch):
    src = _folder(tmp_path / "src", per_class=30)
    prepare_store(src, tmp_path / "fresh", size=16, workers=1, progress=False, encoding="jpeg")
    interrupt_prepare(monkeypatch, src, tmp_path / "store", size=16, workers=1, progress=False,
                      encoding="jpeg")
    # bytes written after the last checkpoint are cut off on resume, not kept as garbage
    with open(tmp_path / "store.partial" / "images.jpg", "ab") as f:
        f.write(b"\xff" * 1000)
    resumed = prepare_store(src, tmp_path / "store", size=16, workers=1, progress=False,
                            encoding="jpeg")
    assert 0 < resumed["resumed_from"] < 90 and resumed["encoding"] == "jpeg"
    a, b = open_store(tmp_path / "fresh"), open_store(tmp_path / "store")
    assert np.array_equal(np.asarray(a.images), np.asarray(b.images))
    assert a.manifest["jpeg_bytes"] == b.manifest["jpeg_bytes"]
    assert np.allclose(a.mean, b.mean)


def test_worker_processes_give_the_same_jpeg_store(tmp_path):
    src = _folder(tmp_path / "src", per_class=12)
    for name, workers in (("one", 1), ("two", 2)):
        prepare_store(src, tmp_path / name, size=16, workers=workers, progress=False,
                      encoding="jpeg")
    a, b = open_store(tmp_path / "one"), open_store(tmp_path / "two")
    assert np.array_equal(np.asarray(a.images), np.asarray(b.images))


def test_loader_gives_the_raw_loaders_batches_decoded(tmp_path):
    raw, jpeg = _pair(tmp_path)
    a = StoreLoader(raw.images, raw.labels, 4, seed=3)
    b = StoreLoader(jpeg.images, jpeg.labels, 4, seed=3)
    for (xa, ya), (xb, yb) in zip(a.iterate(1), b.iterate(1), strict=True):
        assert torch.equal(ya, yb) and xb.dtype == torch.uint8 and xa.shape == xb.shape
        assert (xa.int() - xb.int()).abs().float().mean() < 3


def test_training_and_evaluation_run_from_a_jpeg_store(tmp_path, capsys):
    _, jpeg = _pair(tmp_path, per_class=20)   # 2 of 20 held out: at most a tenth of a class
    run = tmp_path / "run"
    assert main(["train", "--data", str(jpeg.path), "--out", str(run), "epochs=1",
                 "val_per_class=2", "batch_size=4", "eval_batch_size=8", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["held_out"]["ten"]["images"] == 6
    assert main(["eval", str(run), "--data", str(jpeg.path), "--views", "ten", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 60


def test_cli_format_json_and_mismatch(tmp_path, capsys):
    src = _folder(tmp_path / "src", per_class=2)
    assert main(["prepare", str(src), str(tmp_path / "s"), "--size", "16", "--format", "jpeg",
                 "--quality", "80", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["encoding"] == "jpeg" and summary["images"] == 6
    with pytest.raises(UserError, match="jpeg store, not a raw one"):
        prepare_store(src, tmp_path / "s", size=16, progress=False)
    with pytest.raises(UserError, match="quality"):
        prepare_store(src, tmp_path / "t", size=16, progress=False, encoding="jpeg", quality=0)
    with pytest.raises(UserError, match="store format"):
        prepare_store(src, tmp_path / "t", size=16, progress=False, encoding="png")


def test_truncated_jpeg_bytes_are_named_on_open(tmp_path):
    _, _ = _pair(tmp_path)
    path = tmp_path / "jpeg" / "images.jpg"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(UserError, match="images.jpg"):
        open_store(tmp_path / "jpeg")


@pytest.mark.gpu
def test_nvjpeg_batch_decode_matches_the_cpu_decoder(tmp_path):
    _, jpeg = _pair(tmp_path)
    blobs = jpeg.images.read_bytes(np.arange(len(jpeg)))
    cpu = decode_batch(blobs, "cpu")
    gpu = decode_batch(blobs, "cuda")
    assert gpu.device.type == "cuda" and gpu.shape == cpu.shape
    # decoders may round differently; a grey level or two at most
    assert (gpu.cpu().int() - cpu.int()).abs().float().mean() < 1.0
    loader = StoreLoader(jpeg.images, jpeg.labels, 4, seed=0, device="cuda")
    x, y = next(iter(loader.iterate(0)))
    assert x.device.type == "cuda" and x.shape == (4, 32, 32, 3) and y.device.type == "cuda"
