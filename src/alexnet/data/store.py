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

from alexnet.choices import MAX_SIZE, NORMALIZATIONS
from alexnet.errors import UserError, one_of
from alexnet.files import sha256_hex

FORMAT = "alexnet-store"
VERSION = 1
MANIFEST, IMAGES, LABELS, FILES, STATS = (
    "manifest.json", "images.u8", "labels.npy", "files.json", "stats.npz")
JPEG_IMAGES, JPEG_INDEX = "images.jpg", "jpeg_index.npy"
ENCODINGS = ("raw", "jpeg")
PARTIAL_SUFFIX = ".partial"
MAX_CLASSES = 1_000_000


def is_store(path: str | os.PathLike) -> bool:
    """True when `path` is a finished store folder. A folder that cannot be read is none:
    its reader reports it (Path.is_file() would raise for a folder without search
    permission, so the manifest is read straight away)."""
    try:
        data = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


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
            from alexnet.data.jpeg import JpegImages  # torch: the store itself stays torch-free
            return JpegImages(self.path / JPEG_IMAGES, self._jpeg_index(), self.size)
        if self._count == 0:
            return np.zeros(shape, np.uint8)  # np.memmap cannot map an empty file
        return np.memmap(self.path / IMAGES, dtype=np.uint8, mode="r", shape=shape)

    def _jpeg_index(self) -> np.ndarray:
        """int64 [N, 2] (offset, length), every image inside images.jpg."""
        path = self.path / JPEG_INDEX
        try:
            index = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise UserError(f"{path} is not a readable JPEG index ({err}); prepare the store "
                            f"again") from None
        ends = index[:, 0] + index[:, 1] if index.ndim == 2 and index.shape[1:] == (2,) \
            and index.dtype.kind in "iu" else None
        if ends is None or len(index) != self._count or (len(index) and (
                index.min() < 0 or ends.max() > self.manifest["jpeg_bytes"])):
            raise UserError(f"{path} does not index {self._count} images inside "
                            f"{JPEG_IMAGES}; prepare the store again")
        return index.astype(np.int64, copy=False)

    @cached_property
    def labels(self) -> np.ndarray:
        """int64 [N], each a class index; checked, since every split and error uses them."""
        path = self.path / LABELS
        try:
            labels = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise UserError(f"{path} is not a readable labels array ({err}); prepare the "
                            f"store again") from None
        if labels.dtype.kind not in "iu" or labels.shape != (self._count,):
            raise UserError(f"{path} holds {labels.dtype} {list(labels.shape)}, not "
                            f"{self._count} integer labels; prepare the store again")
        if len(labels) and not (labels.min() >= 0 and labels.max() < len(self.classes)):
            raise UserError(f"{path} holds labels outside 0..{len(self.classes) - 1} "
                            f"(the store's {len(self.classes)} classes); prepare it again")
        return labels.astype(np.int64, copy=False)

    @cached_property
    def files(self) -> list[str]:
        """[N] source-relative file names (read and checked by `open_store`)."""
        return read_files(self.path / FILES, self._count)

    @cached_property
    def fingerprint(self) -> dict:
        """What identifies the images (not where they are): their count and one SHA-256 over
        the classes, the labels and the source-relative file names. A checkpoint records it,
        so a held-out split is only ever taken from the store it was drawn from."""
        digest = sha256_hex(json.dumps(self.classes).encode()
                            + np.ascontiguousarray(self.labels, dtype="<i8").tobytes()
                            + json.dumps(self.files).encode())
        return {"count": self._count, "digest": digest[:16]}

    @cached_property
    def _stats(self) -> dict[str, np.ndarray]:
        path = self.path / STATS
        shapes = {"mean": (self.size, self.size, 3), "channel_mean": (3,),
                  "covariance": (3, 3), "eigvals": (3,), "eigvecs": (3, 3)}
        try:
            with np.load(path, allow_pickle=False) as data:
                stats = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError) as err:
            raise UserError(f"{path} is not readable statistics ({err}); prepare the store "
                            f"again") from None
        for key, shape in shapes.items():
            value = stats.get(key)
            if value is None or value.shape != shape or value.dtype.kind != "f" \
                    or not np.isfinite(value).all():
                raise UserError(f"{path} lacks finite {key} of shape {list(shape)}; prepare "
                                f"the store again")
        return stats

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

    def preprocessing(self, crop: int, normalize: str = "mean-image"):
        """The network inputs' normalisation with `crop` x `crop` patches of this store:
        mean-image subtracts its mean image (the paper); mean-image-std also divides each
        channel by its standard deviation over the store's pixels; imagenet uses
        torchvision's per-channel ImageNet mean and std."""
        # torch here only: `prepare` and its workers read stores without paying for it
        # (data/__init__.py; tests/test_structure.py checks it).
        import torch

        from alexnet.data.normalization import Preprocessing, imagenet_preprocessing

        if normalize not in NORMALIZATIONS:
            raise one_of("normalize", normalize, NORMALIZATIONS)
        if crop > self.size:
            raise UserError(f"crop {crop} is larger than the store's {self.size}x{self.size} "
                            f"images ({self.path})")
        if normalize == "imagenet":
            return imagenet_preprocessing(self.size, crop)
        std = (1.0, 1.0, 1.0)
        if normalize == "mean-image-std":
            # Per-channel variance: the diagonal of eigvecs @ diag(eigvals) @ eigvecs^T.
            vecs = np.asarray(self.eigvecs, np.float64)
            vals = np.asarray(self.eigvals, np.float64)
            std = tuple(float(s) for s in np.sqrt(np.clip(
                ((vecs ** 2) * vals[None, :]).sum(axis=1), 1e-6, None)))
        return Preprocessing(size=self.size, crop=crop, mean_image=torch.from_numpy(
            np.array(self.mean, dtype=np.float32)), channel_std=std,
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
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{manifest_file} is not an alexnet store manifest")
    check_manifest(manifest, manifest_file)
    if manifest["version"] > VERSION:
        raise UserError(f"{path} was written by a newer alexnet (store version "
                        f"{manifest['version']}, this one reads {VERSION})")
    if manifest.get("encoding", "raw") == "jpeg":
        images, expected = path / JPEG_IMAGES, manifest["jpeg_bytes"]
    else:
        images, expected = path / IMAGES, manifest["count"] * manifest["size"] ** 2 * 3
    if not images.is_file() or images.stat().st_size != expected:
        raise UserError(f"{images} is missing or has the wrong size "
                        f"(expected {expected:,} bytes); prepare the store again")
    store = Store(path, manifest)
    store.files    # noqa: B018 (checked now, not after an epoch of training)
    return store


def read_files(path: Path, count: int) -> list[str]:
    """The `count` file names of files.json; UserError naming the file when it is not that."""
    def damaged(what: str) -> UserError:
        return UserError(f"{path} {what}; prepare the store again")

    try:
        files = json.loads(path.read_text())
    except FileNotFoundError:
        raise damaged("is missing") from None
    except ValueError as err:
        raise damaged(f"is not valid JSON ({err})") from None
    if not isinstance(files, list):
        raise damaged(f"holds a {type(files).__name__}, not a list of {count:,} file names")
    if len(files) != count:
        raise damaged(f"holds {len(files):,} file name{'s' * (len(files) != 1)}, not {count:,}")
    wrong = next((f for f in files if not isinstance(f, str)), None)
    if wrong is not None:
        raise damaged(f"holds {wrong!r} (of type {type(wrong).__name__}), not a file name")
    return files


def _is_int(value, low: int, high: float = float("inf")) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_manifest(manifest: dict, where: Path) -> None:
    """Types and ranges of the manifest fields a store is read by; UserError naming the field
    (a crafted manifest must not make a reader allocate or index anything unchecked)."""
    def bad(field: str, expected: str) -> UserError:
        return UserError(f"{where} is damaged: {field} is {manifest.get(field)!r}, expected "
                         f"{expected}")

    if not _is_int(manifest.get("version", 0), 0):
        raise bad("version", "a whole number")
    manifest.setdefault("version", 0)
    if not _is_int(manifest.get("count"), 0, 2 ** 40):
        raise bad("count", "a whole number of images")
    if not _is_int(manifest.get("size"), 1, MAX_SIZE):
        raise bad("size", f"a whole number from 1 to {MAX_SIZE}")
    classes = manifest.get("classes")
    if not (isinstance(classes, list) and 0 < len(classes) <= MAX_CLASSES
            and all(isinstance(c, str) for c in classes)):
        raise bad("classes", "a list of class names")
    names = manifest.get("class_names")
    if names is not None and not (isinstance(names, list) and len(names) == len(classes)
                                  and all(isinstance(n, str) for n in names)):
        raise bad("class_names", f"a list of {len(classes)} names")
    if manifest.get("encoding", "raw") not in ENCODINGS:
        raise bad("encoding", " or ".join(ENCODINGS))
    if manifest.get("encoding") == "jpeg" and not _is_int(manifest.get("jpeg_bytes"), 0):
        raise bad("jpeg_bytes", "a whole number of bytes")
