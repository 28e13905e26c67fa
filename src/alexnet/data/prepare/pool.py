"""Decoding a whole source: chunks handed to worker processes, results absorbed in order of
arrival, the state checkpointed every `CHECKPOINT_EVERY_S` seconds.

A worker that dies ends the run with an error (a multiprocessing Pool would restart it
forever). Linux forks the workers (instant start, nothing re-imported); elsewhere they are
spawned. One worker, or a source of a single chunk, is decoded in this process.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from alexnet.console import progress as progress_display
from alexnet.data.prepare import worker
from alexnet.data.prepare.state import PrepareState
from alexnet.data.prepare.worker import PENDING
from alexnet.data.sources import Source
from alexnet.errors import UserError

CHECKPOINT_EVERY_S = 15.0


def _tasks(source: Source, pending: np.ndarray, chunk: int):
    for start in range(0, len(pending), chunk):
        idx = pending[start:start + chunk].tolist()
        yield idx, [source.refs[i] for i in idx]


def _parallel(tasks, workers: int, init: tuple):
    """Results of `worker.decode_chunk` over `tasks` from `workers` processes, as they finish,
    with at most 2 chunks per worker in flight."""
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                             initializer=worker.init_worker,
                             initargs=(*init, os.getpid())) as pool:
        try:
            running = {pool.submit(worker.decode_chunk, t)
                       for t in itertools.islice(tasks, 2 * workers)}
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                    for task in itertools.islice(tasks, 1):
                        running.add(pool.submit(worker.decode_chunk, task))
        except BrokenProcessPool as err:
            raise UserError(f"a decoding process died ({err}); run the same command again "
                            f"to continue") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def decode_all(state: PrepareState, source: Source, workers: int, show: bool) -> None:
    """Decode every image still pending into `state`'s images file."""
    pending = np.flatnonzero(state.status == PENDING)
    if not len(pending):
        return
    chunk = int(np.clip(len(pending) // max(workers * 8, 1), 8, 256 if state.size <= 64 else 64))
    init = (str(source.root), source.reader, state.size, str(state.images_path),
            state.jpeg_quality)
    tasks = _tasks(source, pending, chunk)
    fd = os.open(state.images_path, os.O_RDWR)
    try:
        with progress_display(len(source.refs), f"prepare {source.root.name}", unit="img",
                              enabled=show) as bar:
            bar.advance(state.resumed)
            if workers <= 1 or len(pending) <= chunk:
                worker.init_worker(*init)
                results = map(worker.decode_chunk, tasks)
            else:
                results = _parallel(tasks, workers, init)
            _absorb_all(state, results, fd, bar)
    finally:
        os.close(fd)


def _absorb_all(state: PrepareState, results, fd: int, bar) -> None:
    """Take in every chunk's result, checkpointing as it goes and once more at the end."""
    last = time.monotonic()
    try:
        for result in results:
            bar.advance(state.absorb(result, fd))
            if time.monotonic() - last > CHECKPOINT_EVERY_S:
                state.checkpoint(fd)
                last = time.monotonic()
    except OSError as err:
        raise UserError(f"writing {state.images_path} failed: {err}") from None
    finally:
        if hasattr(results, "close"):
            results.close()   # stops the workers before the final checkpoint
        worker.close_worker()
        # Everything absorbed so far is on disk: an interrupted run loses nothing.
        with contextlib.suppress(OSError):
            state.checkpoint(fd)
