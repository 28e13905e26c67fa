"""Which kernel each kind of layer runs: one explicit setting, and a record of what ran.

Two kinds of layer have more than one implementation of the same arithmetic:

    lrn    "native"    the compiled C loops (`lrn_native`): CPU, channels-last fp32/bf16
           "band"      band-matrix products and fused pointwise loops (`lrn_band`): any device
           "triton"    fused Triton kernels (`lrn_triton`): CUDA
           "reference" the formula under autograd: what the others are tested against, and
                       what compilers and exporters see
    local  "gemm"      one batched product over positions (`local_gemm`)
           "unfold"    F.unfold + einsum, the reference

The setting of each is "auto" unless changed with `use_kernels(lrn=..., local=...)` (for a
block) or `set_kernels(...)`: auto picks, for each call, triton on CUDA where Triton is
installed, native where the C kernel takes the tensor, band otherwise; gemm for the locally
connected layers; and the reference forms while the model is traced by `torch.compile`,
`torch.export` or `torch.jit.trace`, which cannot see into the hand-written kernels. A layer
built with its own `backend` keeps it (the tests and benchmarks compare forms that way).

Every call records the form it ran (`kernels_ran()`), so a run folder can say which
kernels produced its weights (`run.json`) and a resumed run can say when that changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from alexnet.kernels.pointwise import forget_forms_ran, forms_ran

CHOICES = {"lrn": ("auto", "native", "band", "triton", "reference"),
           "local": ("auto", "gemm", "unfold")}
_setting = {"lrn": "auto", "local": "auto"}
_ran: dict[str, set[str]] = {"lrn": set(), "local": set()}


def tracing() -> bool:
    """Inside `torch.compile`, `torch.export` or `torch.jit.trace`."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def kernel_setting(kind: str) -> str:
    """The setting for `kind` ("lrn" or "local")."""
    return _setting[kind]


def set_kernels(lrn: str | None = None, local: str | None = None) -> None:
    """Set the kernels the layers of the process run (None leaves a kind as it is)."""
    for kind, value in (("lrn", lrn), ("local", local)):
        if value is None:
            continue
        if value not in CHOICES[kind]:
            raise ValueError(f"{kind} kernel must be one of {', '.join(CHOICES[kind])}, "
                             f"got {value!r}")
        _setting[kind] = value


@contextmanager
def use_kernels(lrn: str | None = None, local: str | None = None) -> Iterator[None]:
    """`set_kernels(lrn, local)` for the duration of a block; the settings before after."""
    before = dict(_setting)
    set_kernels(lrn, local)
    try:
        yield
    finally:
        _setting.update(before)


def record(kind: str, form: str) -> None:
    """Note that a layer of `kind` ran `form` (not while traced: the graph is not a run)."""
    if not torch.compiler.is_compiling():
        _ran[kind].add(form)


def kernels_ran() -> dict[str, list[str]]:
    """The forms each kind of layer ran in this process so far, and the forms of the fused
    pointwise loops that the band LRN uses ("compiled", "eager")."""
    return {"lrn": sorted(_ran["lrn"]), "local": sorted(_ran["local"]),
            "fused_loops": forms_ran()}


def forget_kernels_ran() -> None:
    """Start the record afresh (a process that trains one run after another)."""
    for forms in _ran.values():
        forms.clear()
    forget_forms_ran()
