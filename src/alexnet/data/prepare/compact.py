"""Closing the holes skipped images leave in a raw store's images file.

Row j takes row kept[j] >= j, in blocks of rows. The sources of a block lie at or after its
start, so blocks before it never touched them; within a block they may be written over, so a
block is read whole and journalled (compact.journal, then compact.json says so) before it is
written. compact.json records the rows done after each block's fsync: a run killed here
continues from the last recorded block, replaying its journal. A JPEG store has no holes:
skipped images wrote no bytes, and its index simply leaves them out.
"""

from __future__ import annotations

import json
import os

import numpy as np

from alexnet.data.prepare.state import PrepareState
from alexnet.data.prepare.worker import DONE
from alexnet.files import atomic_path, atomic_write_json

COMPACT, JOURNAL = "compact.json", "compact.journal"
COMPACT_BLOCK_BYTES = 64 << 20


def close_holes(state: PrepareState) -> np.ndarray:
    """Move kept rows forward over the holes of skipped ones; returns the kept indices."""
    kept = np.flatnonzero(state.status == DONE)
    if state.jpeg_quality:
        return kept
    progress_path = state.partial / COMPACT
    progress = {"done": len(kept), "journal": None}
    if progress_path.is_file():
        progress = json.loads(progress_path.read_text())
    elif len(kept) and kept[-1] != len(kept) - 1:
        first_hole = int(np.argmax(kept != np.arange(len(kept))))
        fd = os.open(state.images_path, os.O_RDWR)
        try:
            state.checkpoint(fd, compacting=True)
        finally:
            os.close(fd)
        progress = {"done": first_hole, "journal": None}
        atomic_write_json(progress_path, progress)
    if int(progress["done"]) < len(kept):
        fd = os.open(state.images_path, os.O_RDWR)
        try:
            _move_rows(state, kept, fd, progress)
        finally:
            os.close(fd)
    os.truncate(state.images_path, len(kept) * state.bytes_per_image)
    return kept


def _move_rows(state: PrepareState, kept: np.ndarray, fd: int, progress: dict) -> None:
    """Rows kept[done:] to their places, block by block, from where `progress` says."""
    bpi, progress_path = state.bytes_per_image, state.partial / COMPACT
    done = int(progress["done"])
    if progress.get("journal"):   # killed while writing this block: write it again
        start, done = progress["journal"]
        os.pwrite(fd, (state.partial / JOURNAL).read_bytes(), start * bpi)
        os.fsync(fd)
        atomic_write_json(progress_path, {"done": done, "journal": None})
    rows = max(1, COMPACT_BLOCK_BYTES // bpi)
    for start in range(done, len(kept), rows):
        end = min(start + rows, len(kept))
        block = b"".join(os.pread(fd, bpi, int(k) * bpi) for k in kept[start:end])
        if kept[start] < end:     # its sources overlap what it writes: journal it
            with atomic_path(state.partial / JOURNAL) as tmp:
                tmp.write_bytes(block)
            atomic_write_json(progress_path, {"done": start, "journal": [start, end]})
        os.pwrite(fd, block, start * bpi)
        os.fsync(fd)
        atomic_write_json(progress_path, {"done": end, "journal": None})
