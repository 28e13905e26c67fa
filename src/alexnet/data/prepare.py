"""`prepare`: decode a source once, in parallel worker processes, into a store (see store.py).

Workers decode chunks of images and write each one at its index of `<out>.partial/images.u8`
(pwrite at index * bytes-per-image, so no process holds more than a chunk), and return the
chunk's statistics sums. The main process keeps a status byte per image and checkpoints it
with the sums every few seconds (after an fsync of the images), so an interrupted prepare
continues where the last checkpoint left it. Skipped images leave holes that are closed by
moving later rows forward, block by block, each block journalled before it is written over
and its end recorded after, so a kill during this compaction continues it too. Then labels,
names, statistics and the manifest are written and the folder is renamed to `<out>`.
Memory: refs and one status byte per image in the main process, one chunk per worker.

One process at a time writes a store (`<out>.lock`, see alexnet.files.output_lock). The
manifest records a signature of the source (file names, labels, sizes, modification times):
a finished store whose source has changed is prepared again. Workers die with the main
process, even when it is killed with SIGKILL.

A JPEG store (`encoding="jpeg"`) differs in one place: workers return each chunk's JPEG bytes
and the main process appends them to `images.jpg`, recording (offset, length) per image; the
checkpoint holds the file's length too, and a resumed run cuts the file back to it. Skipped
images leave no bytes, so there is nothing to compact. The statistics are those of the
pixels before JPEG encoding, as a raw store of the same source would have.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from alexnet.console import info, plural
from alexnet.console import progress as progress_display
from alexnet.data import store as fmt
from alexnet.data.images import ALPHA_BACKGROUND_NAME, BadImage, decode_image
from alexnet.data.jpeg import DEFAULT_QUALITY, encode_jpeg
from alexnet.data.sources import (
    Source,
    cifar_row,
    find_source,
    read_cifar_batch,
    read_class_list,
    remap_classes,
)
from alexnet.data.stats import RGBStats
from alexnet.errors import UserError
from alexnet.files import (
    atomic_path,
    atomic_write_text,
    check_free_space,
    fsync_path,
    output_lock,
    output_path,
)

PENDING, DONE, SKIPPED = 0, 1, 2
CHECKPOINT_EVERY_S = 15.0
PLAN, STATE, EVENTS = "plan.json", "state.npz", "events.json"
COMPACT, JOURNAL = "compact.json", "compact.journal"
COMPACT_BLOCK_BYTES = 64 << 20
MAX_SIZE = fmt.MAX_SIZE


# ---- worker side -------------------------------------------------------------------------

_worker: dict = {}


def _init_worker(root: str, reader: str, size: int, images_path: str,
                 jpeg_quality: int | None, parent: int | None = None) -> None:
    """jpeg_quality None: a raw store, rows written in place; else JPEG bytes returned.
    parent: the main process's pid, in a worker process (which then dies with it)."""
    if parent is not None:
        _die_with(parent)
    _worker.update(root=Path(root), reader=reader, size=size, cache={},
                   jpeg_quality=jpeg_quality,
                   fd=None if jpeg_quality else os.open(images_path, os.O_WRONLY))


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

    from alexnet.data.images import _resize_center_crop
    return _resize_center_crop(Image.fromarray(image), size), [f"32x32 resized to {size}"]


def _work(task: tuple[list[int], list[str]]):
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


# ---- main side ---------------------------------------------------------------------------

def _fingerprint(source: Source, size: int, jpeg_quality: int | None) -> str:
    digest = hashlib.sha256(json.dumps([size, source.kind, source.classes]).encode())
    if jpeg_quality:  # raw stores keep the fingerprint they always had
        digest.update(f"jpeg{jpeg_quality}".encode())
    for ref in source.refs:
        digest.update(os.fsencode(ref) + b"\0")   # names that are not UTF-8 included
    digest.update(np.ascontiguousarray(source.labels).tobytes())
    return digest.hexdigest()


def _signature(source: Source, size: int, jpeg_quality: int | None) -> str:
    """The fingerprint plus every source file's size and modification time: it changes when
    a file is added, removed, relabelled or replaced."""
    digest = hashlib.sha256(_fingerprint(source, size, jpeg_quality).encode())
    files = source.refs if source.reader == "file" else \
        sorted({ref.rsplit("/", 1)[0] for ref in source.refs})     # CIFAR: the batch files
    for name in files:
        try:
            st = os.stat(source.root / name)
            digest.update(f"{st.st_size} {st.st_mtime_ns}\0".encode())
        except OSError:
            digest.update(b"-\0")
    return digest.hexdigest()


def _atomic_savez(path: Path, **arrays) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: no ".npz" added
        np.savez(f, **arrays)


def _atomic_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data))


class _Run:
    """The state of one prepare in `<out>.partial`: status per image, sums, events."""

    def __init__(self, partial: Path, count: int, size: int, jpeg_quality: int | None):
        self.partial, self.count, self.size = partial, count, size
        self.jpeg_quality = jpeg_quality
        self.images_path = partial / (fmt.JPEG_IMAGES if jpeg_quality else fmt.IMAGES)
        self.bytes_per_image = size * size * 3
        self.jpeg_index = np.zeros((count, 2), np.int64) if jpeg_quality else None
        self.jpeg_end = 0      # bytes of images.jpg that belong to absorbed images
        self.status = np.zeros(count, np.int8)
        self.stats = RGBStats(size)
        self.events: dict[int, list[str]] = {}
        self.resumed = 0

    def load(self) -> None:
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
        _atomic_json(self.partial / EVENTS, self.events)
        jpeg = {"jpeg_index": self.jpeg_index, "jpeg_end": np.asarray(self.jpeg_end)} \
            if self.jpeg_quality else {}
        _atomic_savez(self.partial / STATE, status=self.status, compacting=np.asarray(compacting),
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


def _tasks(source: Source, pending: np.ndarray, chunk: int):
    for start in range(0, len(pending), chunk):
        idx = pending[start:start + chunk].tolist()
        yield idx, [source.refs[i] for i in idx]


def _parallel(tasks, workers: int, init: tuple):
    """Results of _work over `tasks` from `workers` processes, as they finish, with at most
    2 chunks per worker in flight. A worker that dies ends the run with an error (a Pool
    would restart it forever). Linux forks (instant start, nothing re-imported); elsewhere
    processes are spawned."""
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                             initializer=_init_worker, initargs=(*init, os.getpid())) as pool:
        try:
            running = {pool.submit(_work, t) for t in itertools.islice(tasks, 2 * workers)}
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                    for task in itertools.islice(tasks, 1):
                        running.add(pool.submit(_work, task))
        except BrokenProcessPool as err:
            raise UserError(f"a decoding process died ({err}); run the same command again "
                            f"to continue") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _decode_all(run: _Run, source: Source, workers: int, show: bool) -> None:
    images_path = run.images_path
    pending = np.flatnonzero(run.status == PENDING)
    if not len(pending):
        return
    chunk = int(np.clip(len(pending) // max(workers * 8, 1), 8, 256 if run.size <= 64 else 64))
    init = (str(source.root), source.reader, run.size, str(images_path), run.jpeg_quality)
    tasks = _tasks(source, pending, chunk)
    fd = os.open(images_path, os.O_RDWR)
    try:
        with progress_display(len(source.refs), f"prepare {source.root.name}", unit="img",
                              enabled=show) as bar:
            bar.advance(run.resumed)
            last = time.monotonic()
            if workers <= 1 or len(pending) <= chunk:
                _init_worker(*init)
                results = map(_work, tasks)
            else:
                results = _parallel(tasks, workers, init)
            try:
                for result in results:
                    bar.advance(run.absorb(result, fd))
                    if time.monotonic() - last > CHECKPOINT_EVERY_S:
                        run.checkpoint(fd)
                        last = time.monotonic()
            except OSError as err:
                raise UserError(f"writing {images_path} failed: {err}") from None
            finally:
                if hasattr(results, "close"):
                    results.close()   # stops the workers before the final checkpoint
                if _worker.get("fd") is not None:
                    os.close(_worker.pop("fd"))
                # Everything absorbed so far is on disk: an interrupted run loses nothing.
                with contextlib.suppress(OSError):
                    run.checkpoint(fd)
    finally:
        os.close(fd)


def _compact(run: _Run) -> np.ndarray:
    """Move kept rows forward over the holes of skipped ones; returns the kept indices.

    Row j takes row kept[j] >= j, in blocks of rows. The sources of a block lie at or after
    its start, so blocks before it never touched them; within a block they may be written
    over, so a block is read whole and journalled (compact.journal, then compact.json says
    so) before it is written. compact.json records the rows done after each block's fsync:
    a run killed here continues from the last recorded block, replaying its journal."""
    kept = np.flatnonzero(run.status == DONE)
    if run.jpeg_quality:
        return kept   # skipped images wrote no bytes; the index simply leaves them out
    bpi, progress_path = run.bytes_per_image, run.partial / COMPACT
    done = len(kept)
    if progress_path.is_file():
        progress = json.loads(progress_path.read_text())
        done = int(progress["done"])
    elif len(kept) and kept[-1] != len(kept) - 1:
        done = int(np.argmax(kept != np.arange(len(kept))))     # the first hole
        fd = os.open(run.images_path, os.O_RDWR)
        try:
            run.checkpoint(fd, compacting=True)
        finally:
            os.close(fd)
        progress = {"done": done, "journal": None}
        _atomic_json(progress_path, progress)
    if done < len(kept):
        fd = os.open(run.images_path, os.O_RDWR)
        try:
            if progress.get("journal"):   # killed while writing this block: write it again
                start, done = progress["journal"]
                os.pwrite(fd, (run.partial / JOURNAL).read_bytes(), start * bpi)
                os.fsync(fd)
                _atomic_json(progress_path, {"done": done, "journal": None})
            rows = max(1, COMPACT_BLOCK_BYTES // bpi)
            for start in range(done, len(kept), rows):
                end = min(start + rows, len(kept))
                block = b"".join(os.pread(fd, bpi, int(k) * bpi) for k in kept[start:end])
                if kept[start] < end:     # its sources overlap what it writes: journal it
                    with atomic_path(run.partial / JOURNAL) as tmp:
                        tmp.write_bytes(block)
                    _atomic_json(progress_path, {"done": start, "journal": [start, end]})
                os.pwrite(fd, block, start * bpi)
                os.fsync(fd)
                _atomic_json(progress_path, {"done": end, "journal": None})
        finally:
            os.close(fd)
    os.truncate(run.images_path, len(kept) * bpi)
    return kept


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


def _finish(run: _Run, source: Source, partial: Path, out: Path, workers: int,
            source_arg: str, signature: str) -> dict:
    kept = _compact(run)
    labels = source.labels[kept]
    written = [run.images_path.name, fmt.LABELS, fmt.FILES, fmt.STATS]
    encoding = {"encoding": "raw"}
    if run.jpeg_quality:
        np.save(partial / fmt.JPEG_INDEX, run.jpeg_index[kept])
        written.append(fmt.JPEG_INDEX)
        encoding = {"encoding": "jpeg", "jpeg_quality": run.jpeg_quality,
                    "jpeg_bytes": run.jpeg_end}
    stats = run.stats.finish()
    np.save(partial / fmt.LABELS, labels.astype(np.int64))
    (partial / fmt.FILES).write_text(json.dumps([source.refs[i] for i in kept]))
    np.savez(partial / fmt.STATS, **stats)
    skipped = source.unlabelled + [
        {"file": source.refs[i], "reason": text}
        for i, (kind, text) in sorted(run.events.items()) if kind == "skipped"]
    converted = [{"file": source.refs[i], "notes": text}
                 for i, (kind, text) in sorted(run.events.items()) if kind == "converted"]
    manifest = {
        "format": fmt.FORMAT, "version": fmt.VERSION, "count": int(len(kept)),
        "size": run.size, "shape": [int(len(kept)), run.size, run.size, 3], **encoding,
        "planned": run.count, "source": str(source.root), "source_arg": source_arg,
        "source_kind": source.kind,
        "classes": source.classes, "class_names": source.class_names,
        "per_class": np.bincount(labels, minlength=len(source.classes)).tolist(),
        "preprocessing": f"shorter side to {run.size} (bilinear, antialiased), central "
                         f"{run.size}x{run.size} crop",
        "alpha_background": ALPHA_BACKGROUND_NAME, "workers": workers,
        "channel_mean": stats["channel_mean"].tolist(), "eigvals": stats["eigvals"].tolist(),
        "eigvecs": stats["eigvecs"].tolist(), "notes": source.notes,
        "skipped": skipped, "converted": converted,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source_signature": signature,
    }
    for name in written:
        fsync_path(partial / name)  # on disk before the manifest says the store is whole
    atomic_write_text(partial / fmt.MANIFEST, json.dumps(manifest, indent=1))
    _publish(partial, out)
    return manifest


def _publish(partial: Path, out: Path) -> None:
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


def _start_or_resume(source: Source, partial: Path, size: int,
                     jpeg_quality: int | None, signature: str) -> _Run:
    plan = {"fingerprint": _fingerprint(source, size, jpeg_quality), "size": size,
            "count": len(source.refs), "source": str(source.root), "signature": signature}
    run = _Run(partial, len(source.refs), size, jpeg_quality)
    if partial.exists():
        try:
            same = json.loads((partial / PLAN).read_text()) == plan
            if same:
                run.load()
                if jpeg_quality:   # bytes past the checkpoint belong to no recorded image
                    os.truncate(run.images_path, run.jpeg_end)
                info(f"continuing the interrupted prepare in {partial} "
                     f"({run.resumed:,} of {run.count:,} images done)")
                return run
        except (OSError, ValueError, KeyError) as err:
            if not (partial / PLAN).is_file():
                raise UserError(f"{partial} exists and was not made by `alexnet prepare`; "
                                f"move it away") from None
            info(f"starting {partial} afresh ({err})")
        shutil.rmtree(partial)
        run = _Run(partial, len(source.refs), size, jpeg_quality)
    partial.mkdir(parents=True)
    with open(run.images_path, "wb") as f:
        if not jpeg_quality:
            f.truncate(len(source.refs) * size * size * 3)  # sparse until written
    _atomic_json(partial / PLAN, plan)
    return run


def prepare_store(src, out, size: int = 256, workers: int | None = None, strict: bool = False,
                  progress: bool = True, *, split: str | None = None, labels: str | None = None,
                  devkit: str | None = None, classes=None, encoding: str = "raw",
                  quality: int = DEFAULT_QUALITY) -> dict:
    """Decode `src` into a store at `out`; returns the summary (counts, classes, skipped
    files with reasons, converted files with what was done).

    A finished store at `out` is left as it is (summary status "already prepared"); an
    interrupted one is continued. `strict`: raise UserError (exit code 1) after writing the
    store when any file was skipped. split: CIFAR python "train" (default) or "test";
    labels / devkit: validation labels file and devkit folder when not found automatically.
    classes: a prepared store or `id [name]` text file whose class list (and order) the
    labels must follow, e.g. the training store's for a validation folder.
    encoding: "raw" (uint8 arrays, fastest to read) or "jpeg" (about a tenth of the disk,
    decoded in batches on the GPU by nvJPEG) at JPEG `quality`.
    """
    if not 1 <= size <= MAX_SIZE:
        raise UserError(f"--size must be between 1 and {MAX_SIZE}, got {size}")
    if workers is not None and not 0 <= workers <= 1024:     # 0, like None: all cores
        raise UserError(f"--workers must be between 1 and 1024, got {workers}")
    if encoding not in fmt.ENCODINGS:
        raise UserError(f"unknown store format {encoding!r}; choose one of "
                        f"{', '.join(fmt.ENCODINGS)}")
    if not 1 <= quality <= 100:
        raise UserError(f"--quality must be between 1 and 100, got {quality}")
    jpeg_quality = quality if encoding == "jpeg" else None
    out = output_path(out, "OUT")
    given = str(Path(src).expanduser().resolve())

    def find() -> Source:
        source = find_source(src, split=split, labels=labels, devkit=devkit)
        if classes is not None:
            source = remap_classes(source, *read_class_list(classes))
        return source

    source = None
    summary = None
    if fmt.is_store(out):
        source, summary = _check_finished(out, given, size, encoding, find, jpeg_quality)
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not a store; choose an empty or new folder")
    if summary is None:
        with output_lock(out, "store folder"):
            partial = fmt.partial_path(out)
            if fmt.is_store(partial):   # finished, then killed before its rename
                _publish(partial, out)
            if fmt.is_store(out):       # finished by the process that held the lock before
                source, summary = _check_finished(out, given, size, encoding, find,
                                                  jpeg_quality, source)
            if summary is None:
                summary = _build(source or find(), out, size, workers, progress,
                                 jpeg_quality, given)
    if strict and summary["skipped"]:
        raise UserError(f"{len(summary['skipped'])} files were skipped (see the manifest in "
                        f"{out})", exit_code=1)
    return summary


def _check_finished(out: Path, given: str, size: int, encoding: str, find,
                    jpeg_quality: int | None, source: Source | None = None):
    """(source or None, the "already prepared" summary, or None when the store at `out` must
    be prepared again because its source changed since)."""
    manifest = fmt.open_store(out).manifest
    if manifest.get("source_arg", given) != given:
        raise UserError(f"{out} already holds a store prepared from "
                        f"{manifest['source_arg']}, not {given}; choose another OUT")
    if int(manifest["size"]) != size:
        raise UserError(f"{out} already holds a store of {manifest['size']}x"
                        f"{manifest['size']} images, not {size}x{size}; choose another OUT")
    if manifest.get("encoding", "raw") != encoding:
        raise UserError(f"{out} already holds a {manifest.get('encoding', 'raw')} store, "
                        f"not a {encoding} one; choose another OUT")
    if "source_signature" in manifest and Path(given).exists():
        source = source or find()
        if _signature(source, size, jpeg_quality) != manifest["source_signature"]:
            info(f"{given} changed since {out} was prepared from it; preparing it again")
            return source, None
    return source, _summary(manifest, out, "already prepared")


def _build(source: Source, out: Path, size: int, workers: int | None, progress: bool,
           jpeg_quality: int | None, given: str) -> dict:
    """Prepare (or continue preparing) `source` into `out`; the caller holds its lock."""
    if not source.refs:
        raise UserError(f"no labelled images in {source.root}")
    workers = max(1, min(workers or os.cpu_count() or 1, 64))
    started = time.perf_counter()
    partial = fmt.partial_path(out)
    signature = _signature(source, size, jpeg_quality)
    run = _start_or_resume(source, partial, size, jpeg_quality, signature)
    if not jpeg_quality:  # the rows still to write (a JPEG store's size is not known ahead)
        check_free_space(partial, int((run.status == PENDING).sum()) * run.bytes_per_image,
                         f"preparing {out}")
    try:
        _decode_all(run, source, workers, progress)
        manifest = _finish(run, source, partial, out, workers, given, signature)
    except OSError as err:
        raise UserError(f"writing the store {str(partial)!r} failed ({err.strerror or err}); "
                        f"nothing prepared so far is lost: run the same command again to "
                        f"finish it") from None
    summary = _summary(manifest, out, "prepared", time.perf_counter() - started,
                       decoded=run.count - run.resumed)
    summary["resumed_from"] = run.resumed
    if progress:
        info(f"prepared {plural(manifest['count'], 'image')} of "
             f"{plural(len(source.classes), 'class')} into {out} "
             f"({len(manifest['skipped'])} skipped, {len(manifest['converted'])} converted) "
             f"in {summary['seconds']:.1f} s")
    return summary


def default_cache_dir() -> Path:
    return Path(os.environ.get("ALEXNET_CACHE", "~/.cache/alexnet")).expanduser() / "stores"


def ensure_store(data_path, size: int, cache_dir=None, refresh: bool = True):
    """A Store for `data_path`: opened as is when it is a store, else prepared once into
    `cache_dir` (default ~/.cache/alexnet/stores/<name>-<size>-<hash>) and opened; prepared
    again when the folder changed since, unless `refresh` is False (a distributed rank after
    rank 0 has just done so)."""
    path = Path(data_path).expanduser()
    if fmt.is_store(path):
        store = fmt.open_store(path)
        if store.size != size:
            raise UserError(f"{path} holds {store.size}x{store.size} images but {size}x{size} "
                            f"are needed; prepare it with --size {size}")
        return store
    if not path.exists():
        raise UserError(f"no such data folder or store: {path}")
    key = hashlib.sha256(f"{path.resolve()}|{size}".encode()).hexdigest()[:16]
    out = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    out = out / f"{path.resolve().name}-{size}-{key}"
    if fmt.is_store(out) and not refresh:
        return fmt.open_store(out)
    if not fmt.is_store(out):
        info(f"preparing {path} once into {out}")
        out.parent.mkdir(parents=True, exist_ok=True)
    prepare_store(path, out, size=size, progress=True)
    return fmt.open_store(out)
