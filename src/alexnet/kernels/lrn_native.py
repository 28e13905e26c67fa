"""Cross-channel LRN for CPUs as one C loop each way (`lrn_cpu.c`), built on first use.

The band form (`lrn_band.py`) needs six passes over the tensor per norm and step: squares, a
[C, C] band product, the forward's arithmetic, then the same three backward, with most of
the band product's multiplications by zero. For channels-last tensors every position's
channels are one contiguous row, so the window sums fit in registers: the forward reads x
and writes y and the window sums s, the backward reads g, x, s and writes dx, and that is
all. In the 11% net this took the norms' share of a bf16 training step on 2 cores from 13%
to under 10% (`alexnet bench model`: 0.92x to 1.00x of its `no LRN` row over five runs).

The C source is built once per machine into the alexnet cache by `native_build` (which also
says what a broken cache, a hanging compiler or a toolchain without OpenMP leads to); each
build is checked against the float64 formula on a tiny tensor before it is used. Without a
working compiler it warns once and the band form runs instead; `ALEXNET_EAGER_KERNELS=1`
(no compiled kernels at all) chooses the band form too.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from alexnet.kernels.native_build import NativeLibrary

SOURCE = Path(__file__).with_name("lrn_cpu.c")
DTYPES = (torch.float32, torch.bfloat16)
MAX_CHANNELS = 1024   # a block of rows lives on an OpenMP thread's stack (~0.3 MB at this)
_COMMON = [ctypes.c_int64, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
           ctypes.c_float, ctypes.c_float, ctypes.c_float, ctypes.c_int, ctypes.c_int,
           ctypes.c_int]


def _reference(x: torch.Tensor, size: int, groups: int, k: float, w: float, beta: float,
               relu: bool) -> torch.Tensor:
    """The formula in float64, window by window (the self-test's yardstick)."""
    x = x.double().clamp_min(0) if relu else x.double()
    c = x.shape[1]
    per = c // groups
    out = torch.empty_like(x)
    for i in range(c):
        first = max(i - size // 2, (i // per) * per)
        last = min(i + (size - 1) // 2, (i // per + 1) * per - 1)
        s = x[:, first:last + 1].square().sum(1)
        out[:, i] = x[:, i] * (k + w * s).pow(-beta)
    return out


def _self_test(lib: ctypes.CDLL) -> None:
    """Configure the library's functions and compare one forward and backward, with and
    without the fused ReLU, against the float64 formula; AssertionError when they differ
    beyond float32 rounding. The first use may come under no_grad, inference mode or
    autocast (an evaluation): the reference's gradient is taken outside all three."""
    with torch.inference_mode(False), torch.enable_grad(), \
            torch.autocast("cpu", enabled=False):
        _compare_with_reference(lib)


def _compare_with_reference(lib: ctypes.CDLL) -> None:
    lib.lrn_forward.argtypes = [ctypes.c_void_p] * 3 + _COMMON
    lib.lrn_backward.argtypes = [ctypes.c_void_p] * 4 + _COMMON
    lib.lrn_forward.restype = lib.lrn_backward.restype = None
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 12, 3, 2, generator=gen) * 30).contiguous(
        memory_format=torch.channels_last)
    grad = torch.randn(x.shape, generator=gen).contiguous(memory_format=torch.channels_last)
    for relu in (False, True):
        args = (5, 2, 2.0, 1e-3, 0.75, relu)
        xd = x.double().requires_grad_()
        want = _reference(xd, *args)
        want.backward(grad.double())
        y, s = torch.empty_like(x), torch.empty_like(x)
        shape = _shape_args(x, *args, threads=1)
        lib.lrn_forward(x.data_ptr(), y.data_ptr(), s.data_ptr(), *shape)
        dx = torch.empty_like(x)
        lib.lrn_backward(grad.data_ptr(), x.data_ptr(), s.data_ptr(), dx.data_ptr(), *shape)
        for got, expected in ((y, want.detach()), (dx, xd.grad)):
            bound = 1e-5 * expected.abs().max().item() + 1e-6
            assert (got.double() - expected).abs().max().item() <= bound, "wrong results"


_LIBRARY = NativeLibrary(SOURCE, _self_test, Path(__file__))


def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None (warned once) where they cannot be built."""
    return _LIBRARY.library()


def build_status() -> dict:
    """How the kernel was obtained: {"built": True, "path", "flags", "openmp"} or
    {"built": False, "reason"} (empty of detail before the first use)."""
    return dict(_LIBRARY.status)


def forget_library() -> None:
    """Look for (and build) the kernel again at the next use; for tests."""
    _LIBRARY.forget()


def supports(x: torch.Tensor) -> bool:
    """Whether the kernel takes x: a channels-last float32/bf16 CPU tensor of at most
    MAX_CHANNELS channels, and the kernel built."""
    return (x.device.type == "cpu" and x.dtype in DTYPES and x.dim() == 4
            and 0 < x.shape[1] <= MAX_CHANNELS
            and x.is_contiguous(memory_format=torch.channels_last) and library() is not None)


def _shape_args(x: torch.Tensor, size: int, groups: int, k: float, w: float, beta: float,
                relu: bool, threads: int | None = None) -> list:
    return [x.numel() // x.shape[1], x.shape[1], groups, size // 2, (size - 1) // 2, k, w,
            beta, int(relu), int(x.dtype == torch.bfloat16),
            threads or torch.get_num_threads()]


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
