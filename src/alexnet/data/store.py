"""The prepared store: fixed-size uint8 images decoded once, read by memory mapping.

A store is a folder:

    manifest.json   format, version, count, size, classes, class_names, source, per-class
                    counts, skipped files with reasons, converted files with what was done,
                    the RGB statistics (channel mean, eigenvalues, eigenvectors)
    images.u8       raw uint8 [N, size, size, 3], row-major (RGB, HWC), or, in a JPEG store
                    (`prepare --format jpeg`), images.jpg: the images' JPEG bytes one after
                    another, and jpeg_index.npy: int64 [N, 2] (offset, length) of each
    labels.npy      int64 [N]
    files.json      [N] file names relative to the source (CIFAR batches: "batch/row")
    stats.npz       mean [size,size,3] float32 (0-255), covariance [3,3] float64,
                    eigvals [3] float32 (descending), eigvecs [3,3] float32 (column i = i-th)

`prepare` builds it in `<out>.partial` and renames that folder to `<out>` when everything is
written, so a folder with a manifest is always complete.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path

import numpy as np

from alexnet.errors import UserError

FORMAT = "alexnet-store"
VERSION = 1
MANIFEST, IMAGES, LABELS, FILES, STATS = (
    "manifest.json", "images.u8", "labels.npy", "files.json", "stats.npz")
JPEG_IMAGES, JPEG_INDEX = "images.jpg", "jpeg_index.npy"
ENCODINGS = ("raw", "jpeg")
PARTIAL_SUFFIX = ".partial"


def is_store(path: str | os.PathLike) -> bool:
    """True when `path` is a finished store folder."""
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text()).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def partial_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


class Store:
    """An opened store. Arrays are loaded lazily except the small ones."""

    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.manifest = manifest
        self.size = int(manifest["size"])
        self.classes: list[str] = list(manifest["classes"])
        self.class_names: list[str] = list(manifest.get("class_names") or self.classes)
        self._count = int(manifest["count"])
        self.encoding: str = manifest.get("encoding", "raw")

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return (f"Store({str(self.path)!r}, images={self._count}, size={self.size}, "
                f"classes={len(self.classes)})")

    @cached_property
    def images(self):
        """uint8 [N, size, size, 3], memory-mapped read-only; for a JPEG store a JpegImages
        that decodes the rows it is indexed with."""
        shape = (self._count, self.size, self.size, 3)
        if self.encoding == "jpeg":
            from alexnet.data.jpeg import JpegImages
            return JpegImages(self.path / JPEG_IMAGES,
                              np.load(self.path / JPEG_INDEX, allow_pickle=False), self.size)
        if self._count == 0:
            return np.zeros(shape, np.uint8)  # np.memmap cannot map an empty file
        return np.memmap(self.path / IMAGES, dtype=np.uint8, mode="r", shape=shape)

    @cached_property
    def labels(self) -> np.ndarray:
        return np.load(self.path / LABELS, allow_pickle=False).astype(np.int64, copy=False)

    @cached_property
    def files(self) -> list[str]:
        return json.loads((self.path / FILES).read_text())

    @cached_property
    def fingerprint(self) -> dict:
        """What identifies the images (not where they are): their count and one SHA-256 over
        the classes, the labels and the source-relative file names. A checkpoint records it,
        so a held-out split is only ever taken from the store it was drawn from."""
        import hashlib

        digest = hashlib.sha256(json.dumps(self.classes).encode())
        digest.update(np.ascontiguousarray(self.labels, dtype="<i8").tobytes())
        digest.update(json.dumps(self.files).encode())
        return {"count": self._count, "digest": digest.hexdigest()[:16]}

    @cached_property
    def _stats(self) -> dict[str, np.ndarray]:
        with np.load(self.path / STATS, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    @property
    def mean(self) -> np.ndarray:
        """The per-pixel mean image, float32 [size, size, 3] on the 0-255 scale."""
        return self._stats["mean"].astype(np.float32, copy=False)

    @property
    def channel_mean(self) -> np.ndarray:
        return self._stats["channel_mean"].astype(np.float32, copy=False)

    @property
    def covariance(self) -> np.ndarray:
        return self._stats["covariance"]

    @property
    def eigvals(self) -> np.ndarray:
        """Eigenvalues of the 3x3 RGB covariance (0-255 scale), float32 [3], descending."""
        return self._stats["eigvals"].astype(np.float32, copy=False)

    @property
    def eigvecs(self) -> np.ndarray:
        """float32 [3, 3]; column i is the eigenvector of eigvals[i]."""
        return self._stats["eigvecs"].astype(np.float32, copy=False)

    @property
    def skipped(self) -> list[dict]:
        return list(self.manifest.get("skipped", []))

    def preprocessing(self, crop: int):
        """The paper's preprocessing for this store: its mean image, `crop` x `crop` patches."""
        import torch

        from alexnet.data.preprocess import Preprocessing

        if crop > self.size:
            raise UserError(f"crop {crop} is larger than the store's {self.size}x{self.size} "
                            f"images ({self.path})")
        return Preprocessing(size=self.size, crop=crop, mean_image=torch.from_numpy(
            np.array(self.mean, dtype=np.float32)),
            channel_mean=tuple(float(v) for v in self.channel_mean))


def open_store(path: str | os.PathLike) -> Store:
    """Open a finished store folder; anything else raises UserError naming the path."""
    path = Path(path).expanduser()
    if not path.exists():
        hint = " (an unfinished prepare is there; run `alexnet prepare` again to finish it)" \
            if partial_path(path).exists() else ""
        raise UserError(f"no store at {path}{hint}")
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise UserError(f"{path} is not a prepared store (no {MANIFEST}); "
                        f"create one with `alexnet prepare SRC {path}`")
    try:
        manifest = json.loads(manifest_file.read_text())
    except ValueError as err:
        raise UserError(f"{manifest_file} is not valid JSON ({err})") from None
    if manifest.get("format") != FORMAT:
        raise UserError(f"{manifest_file} is not an alexnet store manifest")
    if int(manifest.get("version", 0)) > VERSION:
        raise UserError(f"{path} was written by a newer alexnet (store version "
                        f"{manifest['version']}, this one reads {VERSION})")
    if manifest.get("encoding", "raw") == "jpeg":
        images, expected = path / JPEG_IMAGES, int(manifest["jpeg_bytes"])
    else:
        images, expected = path / IMAGES, int(manifest["count"]) * int(manifest["size"]) ** 2 * 3
    if not images.is_file() or images.stat().st_size != expected:
        raise UserError(f"{images} is missing or has the wrong size "
                        f"(expected {expected:,} bytes); prepare the store again")
    return Store(path, manifest)
