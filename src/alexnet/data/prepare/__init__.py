"""`prepare`: decode a source once, in parallel worker processes, into a store (see store.py).

The work, file by file:

- `worker.py`: a decoding process reads a chunk of images and writes each one at its index
  of `<out>.partial/images.u8` (so no process holds more than a chunk), returning the chunk's
  statistics sums. A JPEG store (`encoding="jpeg"`) differs in one place: workers return the
  JPEG bytes and the main process appends them to `images.jpg`, recording (offset, length)
  per image; its statistics are those of the pixels before encoding.
- `pool.py`: the chunks handed out to the processes, the results absorbed as they come.
- `state.py`: a status byte per image and the sums, checkpointed every few seconds (after an
  fsync of the images), so an interrupted prepare continues where it stopped.
- `compact.py`: skipped images leave holes in a raw store, closed by moving later rows
  forward, block by block, each block journalled before it is written over, so a kill during
  this compaction continues it too.
- `publish.py`: labels, names, statistics and the manifest written, and the folder renamed
  to `<out>`.

Memory: the refs and one status byte per image in the main process, one chunk per worker.
One process at a time writes a store (`<out>.lock`, see alexnet.files.output_lock). The
manifest records a signature of the source (file names, labels, sizes, modification times):
a finished store whose source has changed is prepared again. Importing this package does not
import torch, so neither do the workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from alexnet.console import info, plural
from alexnet.data import store as fmt
from alexnet.data.prepare.options import SourceOptions, StoreFormat
from alexnet.data.prepare.pool import decode_all
from alexnet.data.prepare.publish import publish_store, write_store
from alexnet.data.prepare.state import signature, start_or_resume
from alexnet.data.prepare.worker import DEFAULT_QUALITY, PENDING
from alexnet.data.sources import Source
from alexnet.errors import UserError
from alexnet.files import check_free_space, output_lock, output_path, write_refused

__all__ = ["SkippedFiles", "SourceOptions", "StoreFormat", "prepare_store", "report_skipped"]


class SkippedFiles(UserError):
    """`strict` and some files were skipped: the store is written, `summary` says which."""

    def __init__(self, summary: dict):
        super().__init__(f"{len(summary['skipped'])} files were skipped (see the manifest in "
                         f"{summary['store']})", exit_code=1)
        self.summary = summary


def prepare_store(src, out, size: int = 256, workers: int | None = None, strict: bool = False,
                  progress: bool = True, *, source: SourceOptions | None = None,
                  encoding: str = "raw", quality: int = DEFAULT_QUALITY,
                  check: Callable[[Source], None] | None = None) -> dict:
    """Decode `src` into a store at `out`; returns the summary (counts, classes, skipped
    files with reasons, converted files with what was done).

    A finished store at `out` is left as it is (summary status "already prepared"); an
    interrupted one is continued. `strict`: raise SkippedFiles (exit code 1) after writing
    the store when any file was skipped. source: how to read and label `src`
    (`SourceOptions`). encoding: "raw" (uint8 arrays, fastest to read) or "jpeg" (about a
    tenth of the disk, decoded in batches on the GPU by nvJPEG) at JPEG `quality`.
    workers: decoding processes (None or 0: all cores). check: called with the source once
    its files are listed, before anything is decoded (it raises to refuse it: a checkpoint's
    evaluation refuses a folder of other classes before preparing it).
    """
    store = StoreFormat(size, encoding, quality).check()
    if workers is not None and not 0 <= workers <= 1024:     # 0, like None: all cores
        raise UserError(f"--workers must be between 1 and 1024, got {workers}")
    source_options = source or SourceOptions()
    out = output_path(out, "OUT")
    given = str(Path(src).expanduser().resolve())
    found = summary = None
    if fmt.is_store(out):
        found, summary = _check_finished(out, src, given, store, source_options)
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not a store; choose an empty or new folder")
    if summary is None:
        with output_lock(out, "store folder"):
            partial = fmt.partial_path(out)
            if fmt.is_store(partial):   # finished, then killed before its rename
                publish_store(partial, out)
            if fmt.is_store(out):       # finished by the process that held the lock before
                found, summary = _check_finished(out, src, given, store, source_options, found)
            if summary is None:
                found = found or source_options.find(src)
                if check is not None:
                    check(found)
                summary = _build(found, out, store, workers, progress, given)
    if strict and summary["skipped"]:
        raise SkippedFiles(summary)
    return summary


def _check_finished(out: Path, src, given: str, store: StoreFormat, options: SourceOptions,
                    source: Source | None = None) -> tuple[Source | None, dict | None]:
    """(source or None, the "already prepared" summary, or None when the store at `out` must
    be prepared again because its source changed since)."""
    manifest = fmt.open_store(out).manifest
    if manifest.get("source_arg", given) != given:
        raise UserError(f"{out} already holds a store prepared from "
                        f"{manifest['source_arg']}, not {given}; choose another OUT")
    if int(manifest["size"]) != store.size:
        raise UserError(f"{out} already holds a store of {manifest['size']}x"
                        f"{manifest['size']} images, not {store.size}x{store.size}; choose "
                        f"another OUT")
    if manifest.get("encoding", "raw") != store.encoding:
        raise UserError(f"{out} already holds a {manifest.get('encoding', 'raw')} store, "
                        f"not a {store.encoding} one; choose another OUT")
    if "source_signature" in manifest and Path(given).exists():
        source = source or options.find(src)
        if signature(source, store) != manifest["source_signature"]:
            info(f"{given} changed since {out} was prepared from it; preparing it again")
            return source, None
    return source, _summary(manifest, out, "already prepared")


def _build(source: Source, out: Path, store: StoreFormat, workers: int | None,
           progress: bool, given: str) -> dict:
    """Prepare (or continue preparing) `source` into `out`; the caller holds its lock."""
    if not source.refs:
        raise UserError(f"no labelled images in {source.root}")
    workers = max(1, min(workers or os.cpu_count() or 1, 64))
    started = time.perf_counter()
    partial = fmt.partial_path(out)
    source_signature = signature(source, store)
    try:
        state = start_or_resume(source, partial, store, source_signature)
        if not store.jpeg_quality:  # the rows still to write (a JPEG store's size is unknown)
            check_free_space(partial, int((state.status == PENDING).sum())
                             * state.bytes_per_image, f"preparing {out}")
        decode_all(state, source, workers, progress)
        manifest = write_store(state, source, out, workers, given, source_signature)
    except OSError as err:     # refused by the system: exit 1, as the CLI's OSErrors
        why, remedy = write_refused(err, partial)
        raise UserError(f"writing the store {str(partial)!r} failed ({why}); nothing "
                        f"prepared so far is lost: {remedy} and run the same command again "
                        f"to finish it", exit_code=1) from None
    summary = _summary(manifest, out, "prepared", time.perf_counter() - started,
                       decoded=state.count - state.resumed)
    summary["resumed_from"] = state.resumed
    if progress:
        info(f"prepared {plural(manifest['count'], 'image')} of "
             f"{plural(len(source.classes), 'class')} into {out} "
             f"({len(manifest['skipped'])} skipped, {len(manifest['converted'])} converted) "
             f"in {summary['seconds']:.1f} s")
    return summary


def _summary(manifest: dict, out: Path, status: str, seconds: float | None = None,
             decoded: int = 0) -> dict:
    summary = {"status": status, "store": str(out), "source": manifest["source"],
               "kind": manifest["source_kind"], "size": manifest["size"],
               "images": manifest["count"], "num_classes": len(manifest["classes"]),
               "classes": manifest["classes"], "per_class": manifest["per_class"],
               "skipped": manifest["skipped"], "converted": manifest["converted"],
               "encoding": manifest.get("encoding", "raw")}
    if seconds is not None:
        summary.update(seconds=round(seconds, 2), workers=manifest["workers"],
                       images_per_second=round(decoded / max(seconds, 1e-9), 1))
    return summary


def report_skipped(summary: dict, limit: int = 20) -> None:
    """The first `limit` skipped files of a prepare summary, one line each on stderr (all of
    them are in the manifest)."""
    skipped = summary["skipped"]
    for item in skipped[:limit]:
        info(f"skipped {item['file']}: {item['reason']}")
    if len(skipped) > limit:
        info(f"... and {len(skipped) - limit} more skipped (all listed in the manifest in "
             f"{summary['store']})")
