"""What a decoding process does: read its chunk of images, write each one, sum statistics.

A raw store's rows are written by the worker itself at their index of `images.u8` (pwrite at
index * bytes-per-image, so no process holds more than a chunk); a JPEG store's bytes are
returned to the main process, which appends them. Each chunk's result carries a status code
per image, what was skipped or converted, and the chunk's statistics sums. Workers die with
the main process, even when it is killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from alexnet.data.cifar import cifar_row, read_cifar_batch
from alexnet.data.image_file import BadImage, decode_image, resize_center_crop
from alexnet.data.stats import RGBStats

PENDING, DONE, SKIPPED = 0, 1, 2        # an image's status byte
DEFAULT_QUALITY = 90                    # of a JPEG store

_worker: dict = {}


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """uint8 [H, W, 3] RGB -> JPEG bytes (PIL / libjpeg-turbo, 4:2:0 chroma, no metadata)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def init_worker(root: str, reader: str, size: int, images_path: str,
                jpeg_quality: int | None, parent: int | None = None) -> None:
    """jpeg_quality None: a raw store, rows written in place; else JPEG bytes returned.
    parent: the main process's pid, in a worker process (which then dies with it)."""
    if parent is not None:
        _die_with(parent)
    _worker.update(root=Path(root), reader=reader, size=size, cache={},
                   jpeg_quality=jpeg_quality,
                   fd=None if jpeg_quality else os.open(images_path, os.O_WRONLY))


def close_worker() -> None:
    """Close the images file of a worker run in this process."""
    if _worker.get("fd") is not None:
        os.close(_worker.pop("fd"))


def _die_with(parent: int) -> None:
    """End this worker when `parent` dies, however it dies (a SIGKILLed parent runs no
    clean-up, and an idle worker would wait for work forever): the kernel's parent-death
    signal on Linux, and everywhere a thread that watches the parent pid."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL)    # PR_SET_PDEATHSIG
    if os.getppid() != parent:      # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="alexnet-parent-watch").start()


def _read_one(ref: str) -> tuple[np.ndarray, list[str]]:
    size = _worker["size"]
    if _worker["reader"] == "file":
        return decode_image(_worker["root"] / ref, size)
    batch, row = ref.rsplit("/", 1)
    cache = _worker["cache"]
    if batch not in cache:
        cache.clear()  # chunks are contiguous: one batch in memory at a time
        cache[batch] = read_cifar_batch(_worker["root"] / batch)[b"data"]
    image = cifar_row(cache[batch], int(row))
    if size == 32:
        return np.ascontiguousarray(image), []
    from PIL import Image

    return resize_center_crop(Image.fromarray(image), size), [f"32x32 resized to {size}"]


def decode_chunk(task: tuple[list[int], list[str]]):
    """Decode and write one chunk: (indices, status codes, {index: [kind, text]}, sums,
    [(index, JPEG bytes)] for a JPEG store, else [])."""
    indices, refs = task
    size, fd, quality = _worker["size"], _worker["fd"], _worker["jpeg_quality"]
    blobs: list[tuple[int, bytes]] = []
    stats = RGBStats(size)
    codes = np.zeros(len(indices), np.int8)
    events: dict[int, list[str]] = {}
    for k, (index, ref) in enumerate(zip(indices, refs, strict=True)):
        try:
            image, notes = _read_one(ref)
        except BadImage as err:
            codes[k], events[index] = SKIPPED, ["skipped", err.reason]
            continue
        except Exception as err:  # never let one odd file end a long run
            codes[k], events[index] = SKIPPED, ["skipped", f"{type(err).__name__}: {err}"]
            continue
        # Outside the try: a failed write (disk full) must stop the run, not skip images.
        if quality:
            blobs.append((index, encode_jpeg(image, quality)))
        else:
            os.pwrite(fd, image.tobytes(), index * image.nbytes)
        stats.add_image(image)
        codes[k] = DONE
        if notes:
            events[index] = ["converted", "; ".join(notes)]
    return indices, codes, events, stats.to_arrays(), blobs
