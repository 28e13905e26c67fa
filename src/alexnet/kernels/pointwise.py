"""Chains of pointwise arithmetic fused into one loop by TorchInductor (`torch.compile`).

In eager PyTorch every operation of a chain such as `(x * (k + w * s) ** -beta).to(bf16)`
reads and writes the whole tensor, and on a CPU a mix of bf16 and fp32 operands adds a cast
copy per operation: the LRN's arithmetic cost several times its band product. Inductor turns
such a chain into one C++ loop over the elements, computing in fp32 and storing bf16.

`fused(fn)` compiles `fn` on first use (a few seconds; `compile_seconds()` tells how long all
of them took) with dynamic shapes, so new batch sizes do not recompile. Each kind of call (the
tensors' dtypes, devices and layouts, the other arguments' values) gets a compiled copy of
its own: one compiled function serving many kinds recompiles for each, and once past
dynamo's recompile limit a test suite saw wrong gradients from it. Where inductor cannot
compile a kind (no C++ compiler, an unsupported platform) that kind runs `fn` eagerly: the
same arithmetic, slower; the first such failure warns, once per process. Nothing else
changes: other kinds, and other callers of torch.compile, are left as they were.
`ALEXNET_EAGER_KERNELS=1` forces the eager form. Inside a `torch.compile` of the whole model
the plain `fn` is inlined into that graph.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import types
import warnings
from collections.abc import Callable

import torch

_state = {"seconds": 0.0, "warned": False}
_COMPILED, _EAGER = "compiled", "eager"
_ran: set[str] = set()      # which forms ran in this process: "compiled", "eager"


def forms_ran() -> list[str]:
    """Which forms the fused loops ran in, in this process ("compiled", "eager")."""
    return sorted(_ran)


def forget_forms_ran() -> None:
    _ran.clear()


def compile_seconds() -> float:
    """Seconds spent compiling fused kernels in this process so far."""
    return _state["seconds"]


def _kind(args) -> tuple:
    """What a compiled copy is specialised for: each tensor's dtype, device and layout, and
    the value of every other argument."""
    return tuple((a.dtype, a.device.type, a.dim(), a.is_contiguous(),
                  a.is_contiguous(memory_format=torch.channels_last) if a.dim() == 4 else None)
                 if isinstance(a, torch.Tensor) else a for a in args)


def _own_copy(fn: Callable, index: int) -> Callable:
    """fn with a code object of its own, so that dynamo keeps a separate cache for it."""
    code = fn.__code__.replace(co_name=f"{fn.__code__.co_name}_{index}")
    copy = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__,
                              fn.__closure__)
    return torch.compile(copy, dynamic=True)


class _QuietToolchainLookup(logging.Filter):
    """Drops the warning inductor's C++ toolchain lookup logs about CUDA on CPU-only
    machines, while a fused loop compiles (a filter, removed after: the logger's level and
    everything else it logs stay the caller's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def _compile_and_run(fn: Callable, index: int, args) -> tuple[Callable, object]:
    logger = logging.getLogger("torch.utils.cpp_extension")
    quiet = _QuietToolchainLookup()
    logger.addFilter(quiet)
    try:
        function = _own_copy(fn, index)
        return function, function(*args)
    finally:
        logger.removeFilter(quiet)


def fused(fn: Callable) -> Callable:
    compiled: dict = {}      # kind -> its compiled copy, or fn itself where compiling failed

    @functools.wraps(fn)
    def run(*args):
        if os.environ.get("ALEXNET_EAGER_KERNELS") == "1" or torch.compiler.is_compiling():
            _ran.add(_EAGER)
            return fn(*args)
        kind = _kind(args)
        if kind in compiled:
            function = compiled[kind]
            _ran.add(_EAGER if function is fn else _COMPILED)
            return function(*args)
        start = time.perf_counter()   # the first call of a kind compiles
        try:
            function, out = _compile_and_run(fn, len(compiled), args)
        except Exception as err:  # noqa: BLE001 - any compiler failure: this kind runs eagerly
            compiled[kind] = fn
            _ran.add(_EAGER)
            if not _state["warned"]:
                _state["warned"] = True
                first_line = (str(err).splitlines() or [""])[0]
                warnings.warn(f"a fused kernel could not be compiled ({type(err).__name__}: "
                              f"{first_line}); it runs eagerly, which is slower",
                              RuntimeWarning, stacklevel=2)
            return fn(*args)
        compiled[kind] = function
        _ran.add(_COMPILED)
        _state["seconds"] += time.perf_counter() - start
        return out

    return run
