"""The last phase of a prepare: labels, names, statistics and the manifest written beside
the images, then the finished folder renamed from `<out>.partial` to `<out>`."""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from alexnet.data import store as fmt
from alexnet.data.image_file import ALPHA_BACKGROUND_NAME
from alexnet.data.prepare.compact import COMPACT, JOURNAL, close_holes
from alexnet.data.prepare.state import EVENTS, PLAN, STATE, PrepareState
from alexnet.data.sources import Source
from alexnet.files import atomic_write_json, fsync_path


def write_store(state: PrepareState, source: Source, out: Path, workers: int, source_arg: str,
           source_signature: str) -> dict:
    """Write everything but the images, then publish the store at `out`; its manifest."""
    kept = close_holes(state)
    partial = state.partial
    labels = source.labels[kept]
    written = [state.images_path.name, fmt.LABELS, fmt.FILES, fmt.STATS]
    encoding = {"encoding": "raw"}
    if state.jpeg_quality:
        np.save(partial / fmt.JPEG_INDEX, state.jpeg_index[kept])
        written.append(fmt.JPEG_INDEX)
        encoding = {"encoding": "jpeg", "jpeg_quality": state.jpeg_quality,
                    "jpeg_bytes": state.jpeg_end}
    stats = state.stats.finish()
    np.save(partial / fmt.LABELS, labels.astype(np.int64))
    (partial / fmt.FILES).write_text(json.dumps([source.refs[i] for i in kept]))
    np.savez(partial / fmt.STATS, **stats)
    manifest = {
        "format": fmt.FORMAT, "version": fmt.VERSION, "count": int(len(kept)),
        "size": state.size, "shape": [int(len(kept)), state.size, state.size, 3], **encoding,
        "planned": state.count, "source": str(source.root), "source_arg": source_arg,
        "source_kind": source.kind,
        "classes": source.classes, "class_names": source.class_names,
        "per_class": np.bincount(labels, minlength=len(source.classes)).tolist(),
        "preprocessing": f"shorter side to {state.size} (bilinear, antialiased), central "
                         f"{state.size}x{state.size} crop",
        "alpha_background": ALPHA_BACKGROUND_NAME, "workers": workers,
        "channel_mean": stats["channel_mean"].tolist(), "eigvals": stats["eigvals"].tolist(),
        "eigvecs": stats["eigvecs"].tolist(), "notes": source.notes,
        **_events(state, source),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source_signature": source_signature,
    }
    for name in written:
        fsync_path(partial / name)  # on disk before the manifest says the store is whole
    atomic_write_json(partial / fmt.MANIFEST, manifest, indent=1)
    publish_store(partial, out)
    return manifest


def _events(state: PrepareState, source: Source) -> dict:
    """The manifest's lists of skipped files (with reasons) and converted ones (with notes)."""
    skipped = source.unlabelled + [
        {"file": source.refs[i], "reason": text}
        for i, (kind, text) in sorted(state.events.items()) if kind == "skipped"]
    converted = [{"file": source.refs[i], "notes": text}
                 for i, (kind, text) in sorted(state.events.items()) if kind == "converted"]
    return {"skipped": skipped, "converted": converted}


def publish_store(partial: Path, out: Path) -> None:
    """Rename the finished `partial` to `out`, replacing an older store there."""
    for name in (PLAN, STATE, EVENTS, COMPACT, JOURNAL):
        (partial / name).unlink(missing_ok=True)
    fsync_path(partial)
    for left in out.parent.glob(f".{glob.escape(out.name)}.old-*"):  # from a killed refresh
        if fmt.is_store(left):
            shutil.rmtree(left, ignore_errors=True)
    old = None
    if fmt.is_store(out):   # a refresh: readers that have the old files open keep them
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old)
    elif out.is_dir():
        out.rmdir()  # only an empty folder reaches here
    os.replace(partial, out)
    fsync_path(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
