"""Fused kernels for the layers where PyTorch's own ops are slow (see benchmarks/): Triton on
CUDA, compiled C and TorchInductor loops on CPUs."""

from __future__ import annotations

import functools


@functools.cache
def triton_available() -> bool:
    """Triton is importable and a CUDA device exists (or the interpreter is on)."""
    import os

    import torch

    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
