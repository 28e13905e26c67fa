"""Persistent thread pools for the CPU's batch work (augmentation blocks, JPEG decoding).

Each thread runs torch single-threaded: the work handed to a pool is already split into
one piece per thread, so intra-op threads would only add parallel regions and barriers.
A forked child starts without its parent's threads, so it builds its own pools.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import torch

_POOLS: dict[int, ThreadPoolExecutor] = {}
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_POOLS.clear)


def thread_pool(threads: int) -> ThreadPoolExecutor:
    """The process's pool of `threads` threads, each with torch limited to one thread."""
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="alexnet-cpu",
                                             initializer=torch.set_num_threads, initargs=(1,))
    return _POOLS[threads]
