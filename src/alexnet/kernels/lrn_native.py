"""Cross-channel LRN for CPUs as one C loop each way (`lrn_cpu.c`), built on first use.

The band form (`lrn_band.py`) needs six passes over the tensor per norm and step: squares, a
[C, C] band product, the forward's arithmetic, then the same three backward, with most of
the band product's multiplications by zero. For channels-last tensors every position's
channels are one contiguous row, so the window sums fit in registers: the forward reads x
and writes y and the window sums s, the backward reads g, x, s and writes dx, and that is
all. In the 11% net this took the norms' share of a bf16 training step on 2 cores from 13%
to under 10% (`alexnet bench model`: 0.92x to 1.00x of its `no LRN` row over five runs).

The C source is compiled once per machine with the C compiler inductor also uses (`$CC`,
else `cc`), `-O3 -march=native -fopenmp`, into the alexnet cache (`kernels/`), keyed by
source, compiler and processor; OpenMP threads come from the runtime torch already loaded.
Without a working compiler it warns once and the band form runs instead;
`ALEXNET_EAGER_KERNELS=1` (no compiled kernels at all) chooses the band form too.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("lrn_cpu.c")
DTYPES = (torch.float32, torch.bfloat16)
MAX_CHANNELS = 1024   # a block of rows lives on an OpenMP thread's stack (~0.3 MB at this)


def _processor() -> str:
    """What -march=native depends on: the processor's model and feature flags."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    return "\n".join(line for line in info.splitlines()[:40]
                     if line.startswith(("model name", "flags", "Features", "CPU part")))


def _flags() -> list[str]:
    flags = ["-O3", "-march=native", "-ffast-math", "-fno-finite-math-only", "-fopenmp",
             "-fPIC", "-shared"]
    if platform.machine() in ("x86_64", "AMD64"):
        flags.append("-mprefer-vector-width=512")   # gcc otherwise keeps to 256-bit vectors
    return flags


def _build(compiler: str) -> Path:
    """The compiled library in the cache, building it unless a build for this source,
    compiler and processor is there already."""
    from alexnet.data.cache import cache_root

    version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                             timeout=60).stdout
    key = hashlib.sha256("\0".join([SOURCE.read_text(), " ".join(_flags()), version,
                                    _processor()]).encode()).hexdigest()[:16]
    target = cache_root() / "kernels" / f"lrn_cpu-{key}.so"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            built = Path(tmp) / target.name
            subprocess.run([compiler, *_flags(), str(SOURCE), "-o", str(built), "-lm"],
                           check=True, capture_output=True, text=True, timeout=300)
            os.replace(built, target)     # atomic: concurrent builders race harmlessly
    return target


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None (warned once) where they cannot be built."""
    if os.environ.get("ALEXNET_EAGER_KERNELS") == "1":
        return None
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    try:
        if compiler is None:
            raise FileNotFoundError("no C compiler ($CC, cc or gcc) on the PATH")
        lib = ctypes.CDLL(str(_build(compiler)))
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", None) or str(err)
        warnings.warn(f"the CPU LRN kernel could not be built ({detail.strip()[:300]}); "
                      f"the band form runs instead, which is slower", RuntimeWarning,
                      stacklevel=3)
        return None
    common = [ctypes.c_int64, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
              ctypes.c_float, ctypes.c_float, ctypes.c_float, ctypes.c_int, ctypes.c_int,
              ctypes.c_int]
    lib.lrn_forward.argtypes = [ctypes.c_void_p] * 3 + common
    lib.lrn_backward.argtypes = [ctypes.c_void_p] * 4 + common
    lib.lrn_forward.restype = lib.lrn_backward.restype = None
    return lib


def supports(x: torch.Tensor) -> bool:
    """Whether the kernel takes x: a channels-last float32/bf16 CPU tensor of at most
    MAX_CHANNELS channels, and the kernel built."""
    return (x.device.type == "cpu" and x.dtype in DTYPES and x.dim() == 4
            and 0 < x.shape[1] <= MAX_CHANNELS
            and x.is_contiguous(memory_format=torch.channels_last) and library() is not None)


def _shape_args(x: torch.Tensor, size: int, groups: int, k: float, w: float, beta: float,
                relu: bool) -> list:
    return [x.numel() // x.shape[1], x.shape[1], groups, size // 2, (size - 1) // 2, k, w,
            beta, int(relu), int(x.dtype == torch.bfloat16), torch.get_num_threads()]


class _NativeLRN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, size: int, groups: int, k: float, w: float, beta: float, relu: bool):
        y, s = torch.empty_like(x), torch.empty_like(x)
        args = _shape_args(x, size, groups, k, w, beta, relu)
        library().lrn_forward(x.data_ptr(), y.data_ptr(), s.data_ptr(), *args)
        ctx.save_for_backward(x, s)
        ctx.args = args
        return y

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        dx = torch.empty_like(x)
        library().lrn_backward(grad.data_ptr(), x.data_ptr(), s.data_ptr(), dx.data_ptr(),
                               *ctx.args)
        return dx, None, None, None, None, None, None


def lrn_native(x: torch.Tensor, size: int, groups: int, k: float, w: float, beta: float,
               relu: bool = False) -> torch.Tensor:
    """y = x * (k + w * window sum of x^2)^-beta across channels (window: size//2 channels
    before, (size-1)//2 after, inside each of `groups`); with `relu`, of relu(x). x must
    pass `supports`."""
    with torch.autocast("cpu", enabled=False):
        return _NativeLRN.apply(x, size, groups, k, w, beta, relu)
