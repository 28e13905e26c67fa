"""Chains of pointwise arithmetic fused into one loop by TorchInductor (`torch.compile`).

In eager PyTorch every operation of a chain such as `(x * (k + w * s) ** -beta).to(bf16)`
reads and writes the whole tensor, and on a CPU a mix of bf16 and fp32 operands adds a cast
copy per operation: the LRN's arithmetic cost several times its band product. Inductor turns
such a chain into one C++ loop over the elements, computing in fp32 and storing bf16.

`fused(fn)` compiles `fn` on first use (a few seconds; `compile_seconds()` tells how long all
of them took) with dynamic shapes, so new batch sizes do not recompile. Where inductor cannot
compile (no C++ compiler, an unsupported platform) it warns once and runs `fn` eagerly: the
same arithmetic, slower. `ALEXNET_EAGER_KERNELS=1` forces the eager form. Inside a
`torch.compile` of the whole model the plain `fn` is inlined into that graph.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import warnings
from collections.abc import Callable

import torch

_state = {"eager": os.environ.get("ALEXNET_EAGER_KERNELS") == "1", "seconds": 0.0}


def compile_seconds() -> float:
    """Seconds spent compiling fused kernels in this process so far."""
    return _state["seconds"]


def fused(fn: Callable) -> Callable:
    compiled = None
    kinds_seen: set = set()

    @functools.wraps(fn)
    def run(*args):
        nonlocal compiled
        if _state["eager"] or torch.compiler.is_compiling():
            return fn(*args)
        if compiled is None:
            # inductor's C++ toolchain lookup warns about CUDA on CPU-only machines
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            compiled = torch.compile(fn, dynamic=True)
        kind = (args[0].dtype, args[0].device.type)
        if kind in kinds_seen:
            return compiled(*args)
        start = time.perf_counter()   # the first call of a kind compiles
        try:
            out = compiled(*args)
        except Exception as err:  # noqa: BLE001 - any compiler failure: fall back, once
            _state["eager"] = True
            first_line = (str(err).splitlines() or [""])[0]
            warnings.warn(f"fused kernels unavailable ({type(err).__name__}: {first_line}); "
                          "running them eagerly, which is slower", RuntimeWarning,
                          stacklevel=2)
            return fn(*args)
        kinds_seen.add(kind)
        _state["seconds"] += time.perf_counter() - start
        return out

    return run
