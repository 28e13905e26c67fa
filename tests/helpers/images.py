"""Small image files and folders for the tests: generated ones (awkward modes, broken files)
and ImageFolder trees (`image_folder`)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from helpers.paths import CIFAR10_TRAIN


def gradient(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A smooth uint8 [h, w, 3] image (JPEG-friendly) with a little texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / max(w - 1, 1), y * 255 / max(h - 1, 1),
                    (x + y) * 127 / max(w + h - 2, 1)], -1)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def save(path: Path, array: np.ndarray, mode: str | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    image.save(path, **kwargs)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16_rgb(path: Path, rgb16: np.ndarray) -> Path:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), uint16 [h, w, 3]."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in rgb16)
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))
    path.write_bytes(data)
    return path


def png_header_only(path: Path, w: int, h: int) -> Path:
    """A PNG that claims w x h pixels (a decompression bomb's header) with no pixel data."""
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b""))
    path.write_bytes(data)
    return path


def reference(path: Path, size: int) -> np.ndarray:
    """The paper's preprocessing done the plain PIL way: full decode, resize the shorter side
    to `size` (bilinear), central size x size crop."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = size / min(w, h)
        new = (max(size, round(w * scale)), max(size, round(h * scale)))
        im = im.resize(new, Image.Resampling.BILINEAR)
        left, top = round((new[0] - size) / 2), round((new[1] - size) / 2)
        return np.asarray(im.crop((left, top, left + size, top + size)))


CLASSES = ("ant", "bee", "cow")


def image_folder(root: Path, per_class: int = 5, classes: int | Sequence[str] = CLASSES, *,
                 real: bool = False, suffix: str = ".png", bad: bool = False,
                 grey: bool = False, side: tuple[int, int] = (40, 30),
                 step: tuple[int, int] = (7, 5), seed: int = 0) -> Path:
    """An ImageFolder tree under `root`: `per_class` images in a folder per class.

    Generated (the default): gradients, image i of class c (side + step * (i, c)) pixels, in
    one folder per name of `classes`; `bad` adds an empty file and a decompression bomb's
    header, `grey` a greyscale image. real: images a network can learn from, for tests that
    train: the first `classes` (a number) of CIFAR-10's own (links, under its class names)
    when ../shared/data holds them, else 32x32 noise around one colour per class, drawn from
    `seed`."""
    if real:
        return _learnable_folder(root, classes, per_class, seed)
    for c, cls in enumerate(classes):
        for i in range(per_class):
            save(root / cls / f"{i}{suffix}",
                 gradient(side[0] + step[0] * i, side[1] + step[1] * c, seed=10 * c + i))
    if bad:
        (root / "bee" / "empty.jpg").write_bytes(b"")
        png_header_only(root / "cow" / "bomb.png", 30000, 30000)
    if grey:
        save(root / "ant" / "grey.png", gradient(20, 20), mode="L")
    return root


def _learnable_folder(root: Path, classes: int, per_class: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    real = sorted(p for p in CIFAR10_TRAIN.iterdir() if p.is_dir())[:classes] \
        if CIFAR10_TRAIN.is_dir() else []
    for c in range(classes):
        folder = root / (real[c].name if real else f"class{c}")
        folder.mkdir(parents=True, exist_ok=True)
        files = sorted(real[c].iterdir())[:per_class] if real else []
        for i in range(per_class):
            if files:
                (folder / files[i].name).symlink_to(files[i])
            else:
                base = rng.integers(0, 256, 3) * (c + 1) % 256
                pixels = np.clip(base + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root
