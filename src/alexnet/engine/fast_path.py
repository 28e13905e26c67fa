"""How the networks run fastest on a device, decided in one place for training and inference.

- bf16 autocast on CUDA, and on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX: the
  convolutions and products then run at twice fp32's rate or more); fp32 elsewhere, where
  bf16 would only be emulated. Every setting accepts "auto", "bf16" or "none".
- channels_last on both: oneDNN's and cuDNN's fastest convolutions use it, and the
  project's LRN and locally connected kernels read channels as the contiguous dimension.
- On Linux, glibc keeps freed memory for reuse (`keep_freed_memory`): by default it hands
  every block over 128 KB back to the kernel on free and takes fresh, zero-filled pages for
  the next one, so each training step page-faulted its activations in again; with that
  off, a CPU step of the 11% net ran 1.3-1.4x faster (2,900-3,250 -> 3,900-4,200 img/s).
  This is a setting of the whole process's allocator, so only the `alexnet` command's entry
  point makes it (`alexnet.cli.main`); a program that calls the library may call
  `keep_freed_memory()` itself.
- On the CPU, subnormal floats count as zero (`flush_denormals`): arithmetic on them takes a
  microcode assist many times slower than a normal operation, and a saturated tanh net
  produces them in bulk (its exp() underflows); a step of the Fig. 1 tanh net in saturation
  ran 1.6-1.9x faster with them flushed, other nets unchanged (benchmarks/bench_denormals.py).
  Also the entry point's alone: it sets the calling thread's floating-point mode, which
  threads started later inherit, so it comes before torch's thread pool starts.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

import torch
from torch import nn

# oneDNN's instruction-set caps (ONEDNN_MAX_CPU_ISA) under which it multiplies bf16 natively.
BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
             "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "ALL", "DEFAULT")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (x86 avx512_bf16 / amx_bf16 flags), and
    oneDNN is not capped below the instruction sets that do (ONEDNN_MAX_CPU_ISA)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if cap and cap not in BF16_ISAS:
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's malloc reuse freed blocks instead of returning them to the kernel (blocks
    up to 32 MB, glibc's largest mmap threshold, come from the heap, which is trimmed only
    beyond 1 GB free). Whether it applied: not on other C libraries or systems."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3      # <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 << 20) and mallopt(m_trim_threshold, 1 << 30))


def flush_denormals() -> bool:
    """Treat subnormal floats (below 1.2e-38 in fp32) as zero in this thread and those it
    starts later (x86's FTZ/DAZ modes). Whether torch can set it on this CPU. Numbers that
    small are far below anything a training step can resolve, so results do not move."""
    return torch.set_flush_denormal(True)


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `mode` ("auto", "bf16", "none") on `device`; None: fp32."""
    if mode == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
        mode = "bf16" if native else "none"
    return {"bf16": torch.bfloat16, "none": None}[mode]


def use_channels_last(setting: bool | None, device: torch.device) -> bool:
    """`setting`, or where it is None (auto), True on CUDA and CPUs."""
    return device.type in ("cuda", "cpu") if setting is None else setting


def prepare_for_inference(model: nn.Module, amp: str = "auto",
                          channels_last: bool | None = None) -> torch.dtype | None:
    """Put `model` in the fast layout for its device (in place); returns its autocast dtype."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if use_channels_last(channels_last, device):
        model.to(memory_format=torch.channels_last)
    return amp_dtype(amp, device)
