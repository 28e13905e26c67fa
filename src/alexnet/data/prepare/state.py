"""The resumable state of one prepare, kept in `<out>.partial` beside the images.

plan.json says what is being prepared (a change starts afresh); state.npz holds a status
byte per image and the statistics sums (and, for a JPEG store, each image's offset and length
in images.jpg and the bytes of it that count); events.json what was skipped or converted.
They are checkpointed every few seconds, after an fsync of the images, so the status never
claims rows that are not on disk and an interrupted prepare continues where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from alexnet.console import info
from alexnet.data import store as fmt
from alexnet.data.prepare.options import StoreFormat
from alexnet.data.prepare.worker import PENDING
from alexnet.data.sources import Source
from alexnet.data.stats import RGBStats
from alexnet.errors import UserError
from alexnet.files import atomic_path, atomic_write_json, sha256_hex

PLAN, STATE, EVENTS = "plan.json", "state.npz", "events.json"


def fingerprint(source: Source, store: StoreFormat) -> str:
    """What identifies the images to prepare: the classes, every file name and label."""
    def pieces():
        yield json.dumps([store.size, source.kind, source.classes])
        if store.jpeg_quality:  # raw stores keep the fingerprint they always had
            yield f"jpeg{store.jpeg_quality}"
        for ref in source.refs:
            yield os.fsencode(ref) + b"\0"   # names that are not UTF-8 included
        yield np.ascontiguousarray(source.labels).tobytes()

    return sha256_hex(pieces())


def signature(source: Source, store: StoreFormat) -> str:
    """The fingerprint plus every source file's size and modification time: it changes when
    a file is added, removed, relabelled or replaced."""
    parts = [fingerprint(source, store)]
    files = source.refs if source.reader == "file" else \
        sorted({ref.rsplit("/", 1)[0] for ref in source.refs})     # CIFAR: the batch files
    for name in files:
        try:
            st = os.stat(source.root / name)
            parts.append(f"{st.st_size} {st.st_mtime_ns}\0")
        except OSError:
            parts.append("-\0")
    return sha256_hex("".join(parts))


class PrepareState:
    """The state of one prepare in `<out>.partial`: status per image, sums, events."""

    def __init__(self, partial: Path, count: int, store: StoreFormat):
        self.partial, self.count, self.size = partial, count, store.size
        self.jpeg_quality = store.jpeg_quality
        self.images_path = partial / (fmt.JPEG_IMAGES if self.jpeg_quality else fmt.IMAGES)
        self.bytes_per_image = store.size * store.size * 3
        self.jpeg_index = np.zeros((count, 2), np.int64) if self.jpeg_quality else None
        self.jpeg_end = 0      # bytes of images.jpg that belong to absorbed images
        self.status = np.zeros(count, np.int8)
        self.stats = RGBStats(store.size)
        self.events: dict[int, list[str]] = {}
        self.resumed = 0

    def read_checkpoint(self) -> None:
        """Take up the state the last checkpoint saved."""
        with np.load(self.partial / STATE, allow_pickle=False) as state:
            self.status = np.array(state["status"], np.int8)
            self.stats = RGBStats.from_arrays(state)
            if self.jpeg_quality:
                self.jpeg_index = np.array(state["jpeg_index"], np.int64)
                self.jpeg_end = int(state["jpeg_end"])
        events = json.loads((self.partial / EVENTS).read_text())
        if len(self.status) != self.count:
            raise ValueError(f"{STATE} holds {len(self.status)} images, not {self.count}")
        self.events = {int(k): v for k, v in events.items() if self.status[int(k)] != PENDING}
        self.resumed = int((self.status != PENDING).sum())

    def checkpoint(self, fd: int, compacting: bool = False) -> None:
        os.fsync(fd)  # images first: the status must never claim rows that are not on disk
        atomic_write_json(self.partial / EVENTS, self.events)
        jpeg = {"jpeg_index": self.jpeg_index, "jpeg_end": np.asarray(self.jpeg_end)} \
            if self.jpeg_quality else {}
        with atomic_path(self.partial / STATE) as tmp, open(tmp, "wb") as f:
            np.savez(f, status=self.status, compacting=np.asarray(compacting),  # no ".npz" added
                     **self.stats.to_arrays(), **jpeg)

    def absorb(self, result, fd: int) -> int:
        """Take in one chunk's results; a JPEG store's bytes are appended to `fd` first."""
        indices, codes, events, sums, blobs = result
        if blobs:
            os.pwrite(fd, b"".join(data for _, data in blobs), self.jpeg_end)
            for index, data in blobs:
                self.jpeg_index[index] = (self.jpeg_end, len(data))
                self.jpeg_end += len(data)
        self.status[np.asarray(indices, np.int64)] = codes
        self.events.update(events)
        self.stats.merge(RGBStats.from_arrays(sums))
        return len(indices)


def start_or_resume(source: Source, partial: Path, store: StoreFormat,
                    source_signature: str) -> PrepareState:
    """The state in `partial`, continued when it was made for the same plan, else new."""
    plan = {"fingerprint": fingerprint(source, store), "size": store.size,
            "count": len(source.refs), "source": str(source.root),
            "signature": source_signature}
    state = PrepareState(partial, len(source.refs), store)
    if partial.exists():
        try:
            if json.loads((partial / PLAN).read_text()) == plan:
                state.read_checkpoint()
                if store.jpeg_quality:   # bytes past the checkpoint belong to no image
                    os.truncate(state.images_path, state.jpeg_end)
                info(f"continuing the interrupted prepare in {partial} "
                     f"({state.resumed:,} of {state.count:,} images done)")
                return state
        except (OSError, ValueError, KeyError) as err:
            if not (partial / PLAN).is_file():
                raise UserError(f"{partial} exists and was not made by `alexnet prepare`; "
                                f"move it away") from None
            info(f"starting {partial} afresh ({err})")
        shutil.rmtree(partial)
        state = PrepareState(partial, len(source.refs), store)
    partial.mkdir(parents=True)
    with open(state.images_path, "wb") as f:
        if not store.jpeg_quality:
            f.truncate(len(source.refs) * state.bytes_per_image)  # sparse until written
    atomic_write_json(partial / PLAN, plan)
    return state
