"""The process's CPU threads: how many torch uses, and persistent pools for batch work.

`use_threads(n)` is the one place that sets torch's thread count (`threads=N` / `--threads N`;
None picks `default_threads()`). The default matters on a shared machine: when another
CPU-heavy job runs, more threads than free cores make every parallel region wait at its
barrier for a thread that is not scheduled, and training ran 11-13x slower than alone; one
thread per free core loses only the cores the other job takes.

The pools: each thread runs torch single-threaded: the work handed to a pool is already split
into one piece per thread, so intra-op threads would only add parallel regions and barriers.
A forked child starts without its parent's threads, so it builds its own pools.

What a library call may change is its own threads only: `torch.set_num_threads` changes the
whole process (a new thread's first torch op takes its count, and oneDNN's cache is
cleared), so the pools' threads and `single_threaded()` set OpenMP's per-thread count
instead; `threads_for(n)` restores the caller's count when it ends.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch

from alexnet.errors import UserError

_POOLS: dict[int, ThreadPoolExecutor] = {}
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_POOLS.clear)
_AUTO: int | None = None   # the default, chosen once per process (before it adds to the load)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset set)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def busy_cpus(seconds: float = 0.2) -> float:
    """How many CPUs other processes keep busy now: on Linux from /proc/stat over `seconds`
    (this process waits meanwhile), elsewhere the 1-minute load average. The load average
    lags by a minute: a job that has just ended would still count for most of it."""
    def sample() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)     # idle + iowait
        return sum(fields) - idle, sum(fields)

    first = sample()
    if first is not None:
        time.sleep(seconds)
        second = sample()
        if second is not None and second[1] > first[1]:
            share = (second[0] - first[0]) / (second[1] - first[1])
            return share * (os.cpu_count() or 1)
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):    # no load average on this system
        return 0.0


def default_threads() -> int:
    """Threads for torch when none are asked for: OMP_NUM_THREADS when it is set; else the
    usable CPUs less those other processes keep busy now (`busy_cpus`, rounded), shared
    among torchrun's processes on this machine; at least 1."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    cpus = usable_cpus()
    free = min(cpus, max(1, round(cpus - busy_cpus())))
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, free // max(local, 1))


def use_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to `threads` (None: `default_threads()`, chosen once per
    process); returns the number set. For the CLI's entry point; library code uses
    `threads_for`, which gives the caller's count back."""
    global _AUTO
    if threads is None:
        if _AUTO is None:
            _AUTO = default_threads()
        threads = _AUTO
    if threads < 1:
        raise UserError(f"threads must be at least 1, got {threads}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@contextmanager
def threads_for(threads: int | None) -> Iterator[int]:
    """`use_threads(threads)` for the duration; the caller's thread count after."""
    before = torch.get_num_threads()
    try:
        yield use_threads(threads)
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@functools.cache
def _openmp() -> tuple | None:
    """OpenMP's omp_get_max_threads / omp_set_num_threads of the runtime torch loaded, or
    None (another threading backend, or not found)."""
    if "OpenMP" not in torch.__config__.parallel_info():
        return None
    libraries = glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.*"))
    for name in [*libraries, None]:
        try:
            lib = ctypes.CDLL(name)
            return lib.omp_get_max_threads, lib.omp_set_num_threads
        except (OSError, AttributeError):
            continue
    return None


def _set_this_threads_count(n: int) -> int | None:
    """OpenMP's thread count for torch ops on the calling thread only; returns the one it
    replaced (None where OpenMP's functions are not at hand: nothing changed)."""
    functions = _openmp()
    if functions is None:
        return None
    get, put = functions
    torch.get_num_threads()  # torch's lazy per-thread set-up first, so it cannot undo this
    before = get()
    put(n)
    return before


@contextmanager
def single_threaded() -> Iterator[None]:
    """Torch ops on the calling thread run on one thread for the duration (other threads,
    and the process's setting, are left as they are)."""
    before = _set_this_threads_count(1)
    try:
        yield
    finally:
        if before is not None:
            _set_this_threads_count(before)


def thread_pool(threads: int) -> ThreadPoolExecutor:
    """The process's pool of `threads` threads, each with torch limited to one thread."""
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="alexnet-cpu",
                                             initializer=_set_this_threads_count,
                                             initargs=(1,))
    return _POOLS[threads]
