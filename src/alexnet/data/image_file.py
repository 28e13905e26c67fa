"""Decoding one image file into the paper's stored form: shorter side to `size`, central crop.

Every awkward file has a defined fate. Converted and kept (with a note saying what was done):
greyscale, CMYK, palette, 16-bit (scaled to 8 bits by 65535 -> 255, never clipped), images
with transparency (composited on WHITE, the background such images are drawn on), PNG or
other data behind a .JPEG name, tiny images (upscaled) and panoramas (central crop).
Skipped with `BadImage(reason)`: empty, truncated, undecodable files and decompression bombs
(more than `MAX_PIXELS` pixels).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from alexnet.data.folders import IMAGE_SUFFIXES

MAX_PIXELS = 89_478_485          # Pillow's own bomb threshold (a 1 GiB RGBA image)
ALPHA_BACKGROUND = (255, 255, 255)
ALPHA_BACKGROUND_NAME = "white"
RESAMPLE = Image.Resampling.BILINEAR  # antialiased, like torchvision's Resize


class BadImage(Exception):
    """A file that cannot become an image; `reason` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """uint8 [size, size, 3] RGB: shorter side resized to `size`, central size x size crop."""
    return decode_image(path, size)[0]


def decode_image(path: str | os.PathLike, size: int) -> tuple[np.ndarray, list[str]]:
    """(uint8 [size, size, 3], notes): notes name every conversion made (empty when none)."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BadImage("empty file")
    except OSError as err:
        raise BadImage(f"cannot read: {err.strerror or err}") from None
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                expected = IMAGE_SUFFIXES.get(path.suffix.lower())
                if expected and im.format and im.format != expected:
                    notes.append(f"{im.format} data behind a {path.suffix} name")
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise BadImage(f"decompression bomb: {w}x{h} pixels exceeds {MAX_PIXELS:,}")
                if w < 1 or h < 1:
                    raise BadImage(f"no pixels ({w}x{h})")
                if im.format == "JPEG" and im.mode in ("RGB", "L") and min(w, h) >= 4 * size:
                    # Decode at a reduced DCT scale when the image is much larger than needed;
                    # the result keeps the shorter side >= size, so only the resize sees it.
                    scale = size / min(w, h)
                    im.draft(im.mode, (max(1, int(w * scale * 2)), max(1, int(h * scale * 2))))
                im.load()
                rgb = _to_rgb(im, notes)
                if min(w, h) < size // 4:
                    notes.append(f"tiny ({w}x{h}), upscaled")
                if max(w, h) >= 4 * min(w, h):
                    notes.append(f"panoramic ({w}x{h}), centre kept")
                return resize_center_crop(rgb, size), notes
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadImage(f"decompression bomb: {err}") from None
    except Image.UnidentifiedImageError:
        raise BadImage("not a recognised image format") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as err:
        text = str(err)
        if "truncated" in text or "broken data stream" in text or isinstance(err, EOFError):
            raise BadImage(f"truncated: {text}") from None
        raise BadImage(f"undecodable: {text}") from None
    except MemoryError:
        raise BadImage("too large to decode") from None


def _to_rgb(im: Image.Image, notes: list[str]) -> Image.Image:
    """An RGB image from any Pillow mode, recording what was converted."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: scale 0..65535 to 0..255 (Pillow's own convert would clip).
        arr = np.asarray(im).astype(np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        notes.append(f"{mode} scaled to 8 bits")
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "F":
        grey = np.clip(np.rint(np.asarray(im)), 0, 255).astype(np.uint8)
        notes.append("32-bit float greyscale rounded to 8 bits")
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "P":
        mode_after = "RGBA" if "transparency" in im.info else "RGB"
        notes.append("palette converted")
        im = im.convert(mode_after)
        if mode_after == "RGB":
            return im
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        notes.append(f"{mode} composited on {ALPHA_BACKGROUND_NAME}")
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        notes.append("CMYK converted")
    elif mode in ("L", "1"):
        notes.append("greyscale converted")
    else:
        notes.append(f"{mode} converted")
    return im.convert("RGB")


def resize_center_crop(im: Image.Image, size: int) -> np.ndarray:
    """Exactly resize-shorter-side-then-centre-crop, computed on the crop's box only.

    The full resize of a panorama could be huge; resizing just the source box that maps onto
    the crop gives the same filter taps (Pillow samples outside the box where needed).
    """
    w, h = im.size
    if w <= h:
        new_w, new_h = size, max(size, int(round(h * size / w)))
    else:
        new_w, new_h = max(size, int(round(w * size / h))), size
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    sx, sy = w / new_w, h / new_h
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    out = im.resize((size, size), RESAMPLE, box=box)
    return np.asarray(out, dtype=np.uint8).copy()

