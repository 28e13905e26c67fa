"""The layers AlexNet-era networks need that PyTorch does not ship in this form.

- `LocalResponseNorm`: the paper's cross-channel normalisation (§3.3), optionally per tower.
- `WithinMapNorm`: cuda-convnet's spatial ("within-map") response normalisation.
- `LocallyConnected2d`: a convolution whose weights are not shared across positions.

Which implementation of the LRN and of the locally connected layer runs is one explicit
setting (`alexnet.kernels.choice`); each call records the one it ran.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from alexnet.kernels import choice, lrn_native, triton_available
from alexnet.kernels.local_gemm import locally_connected
from alexnet.kernels.lrn_band import lrn_band


def channel_window_matrix(channels: int, size: int, groups: int = 1,
                          device=None, dtype=None) -> torch.Tensor:
    """Band matrix B [C, C] with B[j, i] = 1 when channel j lies in channel i's window.

    The window of channel i is i - size//2 .. i + (size-1)//2 (the paper's n/2 either side
    for odd n), clipped at the edges of i's group so that towers stay separate. Squared
    activations [..., C] @ B give each channel's window sum as one matrix product, which
    maps onto tensor cores instead of a chain of small strided reads.
    """
    per_group = channels // groups
    index = torch.arange(channels, device=device)
    j, i = index[:, None], index[None, :]
    same_group = (j // per_group) == (i // per_group)
    in_window = (j - i >= -(size // 2)) & (j - i <= (size - 1) // 2)
    return (same_group & in_window).to(dtype or torch.float32)


class LocalResponseNorm(nn.Module):
    """b_i = a_i / (k + alpha' * sum_{j in window(i)} a_j^2) ** beta, across channels.

    alpha' = alpha / size when `alpha_per_term` (what the 2012 code and
    `torch.nn.LocalResponseNorm` compute, the numbers in the paper come from it), else the
    paper text's literal alpha. `groups` > 1 keeps each window inside its group (tower),
    as the 2012 code normalised each GPU's maps separately. `relu_first`: the norm of
    relu(a), the ReLU that precedes the norm in these networks done inside the norm's
    kernels (no pass of its own over the maps, forward or backward); a model built with it
    has no separate ReLU module there.

    `backend`: None (the default) runs what `alexnet.kernels.choice` sets for "lrn" (auto:
    triton on CUDA, native for channels-last float32/bf16 CPU tensors where the C kernel
    built, band otherwise, the reference while traced); a layer built with one of "native",
    "band", "triton", "reference" always runs that one ("native" falls back to "band" for a
    tensor the C kernel does not take).
    """

    backends = (None, "auto", "native", "band", "triton", "reference")

    def __init__(self, channels: int, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                 k: float = 2.0, groups: int = 1, alpha_per_term: bool = True,
                 relu_first: bool = False, backend: str | None = None):
        super().__init__()
        if backend not in self.backends:
            raise ValueError(f"backend must be one of {self.backends}, got {backend!r}")
        self.backend = backend
        if channels % groups:
            raise ValueError(f"{channels} channels do not split into {groups} groups")
        self.channels, self.size, self.alpha, self.beta, self.k = channels, size, alpha, beta, k
        self.groups, self.alpha_per_term, self.relu_first = groups, alpha_per_term, relu_first
        # A constant, not a parameter: kept out of the state dict, moved with the module.
        self.register_buffer("band", channel_window_matrix(channels, size, groups),
                             persistent=False)

    @property
    def term_weight(self) -> float:
        """The weight of each squared activation in the denominator."""
        return self.alpha / self.size if self.alpha_per_term else self.alpha

    def form(self, x: torch.Tensor) -> str:
        """The implementation this call runs (see the class docstring)."""
        wanted = self.backend or choice.kernel_setting("lrn")
        if wanted == "auto":
            if choice.tracing():
                return "reference"
            if x.is_cuda and self.size % 2 == 1 and triton_available():
                return "triton"
            wanted = "native"
        if wanted == "native":
            if choice.tracing():   # a ctypes call is invisible to a tracer
                raise RuntimeError("the native LRN kernel cannot be traced; trace with "
                                   "alexnet.kernels.choice.use_kernels(lrn='reference')")
            return "native" if lrn_native.supports(x) else "band"
        return wanted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        form = self.form(x)
        choice.record("lrn", form)
        w, relu = self.term_weight, self.relu_first
        if form == "native":
            return lrn_native.lrn_native(x, self.size, self.groups, self.k, w, self.beta, relu)
        if form == "band":
            return lrn_band(x, self.band, self.k, w, self.beta, relu)
        if relu:
            x = F.relu(x)
        if form == "triton":
            if self.size % 2 == 0:
                raise ValueError("the Triton LRN needs an odd window size (symmetric windows)")
            from alexnet.kernels.lrn_triton import lrn  # Triton is optional: only when it runs

            return lrn(x, self.size, self.groups, self.k, w, self.beta)
        # The reference. [N, C, H, W] -> [N, H, W, C] is free for channels_last tensors;
        # the window sum is then a [NHW, C] x [C, C] product.
        band = self.band.to(x.dtype)
        window_sum = torch.matmul(x.square().movedim(1, -1), band).movedim(-1, 1)
        return x * (self.k + w * window_sum).pow(-self.beta)

    def extra_repr(self) -> str:
        return (f"{self.channels}, size={self.size}, alpha={self.alpha}, beta={self.beta}, "
                f"k={self.k}, groups={self.groups}, alpha_per_term={self.alpha_per_term}"
                + (", relu_first=True" if self.relu_first else "")
                + (f", backend={self.backend!r}" if self.backend else ""))


class WithinMapNorm(nn.Module):
    """cuda-convnet's within-map normalisation: b = a / (k + alpha/size^2 * sum a^2)^beta.

    The sum runs over a size x size spatial window centred on each position of the same map
    (zero beyond the border), as in cuda-convnet's `rnorm` layers.
    """

    def __init__(self, size: int = 3, alpha: float = 5e-5, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.size // 2, (self.size - 1) // 2) * 2
        mean_sq = F.avg_pool2d(F.pad(x.square(), pad), self.size, stride=1)
        return x * (self.k + self.alpha * mean_sq).pow(-self.beta)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class LocallyConnected2d(nn.Module):
    """Like Conv2d, but every output position has its own filters (cuda-convnet's `local`).

    weight: [out_h * out_w, out_channels, k * k * in_channels / groups], fan-in in (kh, kw, c)
    order; bias: [out_channels, out_h, out_w] (also unshared). The input size is fixed at
    construction, as positions own weights. `groups` as in Conv2d: output group g reads
    input group g only (a tower that reads only its own tower's maps, `cifar-towers`).

    `backend`: None (the default) runs what `alexnet.kernels.choice` sets for "local" (auto:
    gemm, or unfold while traced); "gemm" runs `alexnet.kernels.local_gemm`, one batched
    product over positions with a hand-written backward; "unfold" is the plain `F.unfold` +
    `einsum` formulation, the reference it is tested against.
    """

    backends = (None, "auto", "gemm", "unfold")

    def __init__(self, in_channels: int, out_channels: int, input_size: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, bias: bool = True,
                 backend: str | None = None, groups: int = 1):
        super().__init__()
        if backend not in self.backends:
            raise ValueError(f"backend must be one of {self.backends}, got {backend!r}")
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{in_channels} input and {out_channels} output channels do not "
                             f"split into {groups} groups")
        self.backend, self.groups = backend, groups
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_size, self.kernel_size = input_size, kernel_size
        self.stride, self.padding = stride, padding
        self.output_size = (input_size + 2 * padding - kernel_size) // stride + 1
        positions = self.output_size**2
        fan_in = in_channels // groups * kernel_size**2
        self.weight = nn.Parameter(torch.empty(positions, out_channels, fan_in))
        self.bias = (nn.Parameter(torch.empty(out_channels, self.output_size, self.output_size))
                     if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The same bounds Conv2d uses by default, per position.
        bound = 1 / math.sqrt(self.weight.shape[-1])
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ValueError(f"LocallyConnected2d expects {self.input_size}x{self.input_size} "
                             f"inputs, got {tuple(x.shape[-2:])}")
        if self.groups == 1:
            return self._one_group(x, self.weight, self.bias)
        # Each group on its own slice of channels and of the weight's output rows.
        biases = [None] * self.groups if self.bias is None else self.bias.chunk(self.groups)
        return torch.cat([self._one_group(*parts) for parts in zip(
            x.chunk(self.groups, 1), self.weight.chunk(self.groups, 1), biases, strict=True)], 1)

    def _one_group(self, x: torch.Tensor, weight: torch.Tensor,
                   bias: torch.Tensor | None) -> torch.Tensor:
        """x [N, C, H, W] through weight [L, O, k*k*C] and bias [O, Ho, Wo] (or None)."""
        form = self.backend or choice.kernel_setting("local")
        if form == "auto":
            form = "unfold" if choice.tracing() else "gemm"
        choice.record("local", form)
        if form == "gemm":
            return locally_connected(x, weight, bias, self.kernel_size, self.stride,
                                     self.padding)
        # The plain formulation (the reference): patches [N, C*k*k, L] in F.unfold's
        # (c, kh, kw) order, then per position L: [N, C*k*k] @ [C*k*k, out].
        k, positions, out_channels = self.kernel_size, self.output_size ** 2, weight.shape[1]
        weight = weight.reshape(positions, out_channels, k * k, x.shape[1])
        weight = weight.transpose(2, 3).reshape(positions, out_channels, -1)
        patches = F.unfold(x, k, padding=self.padding, stride=self.stride)
        out = torch.einsum("nil,loi->nol", patches, weight)
        out = out.reshape(x.shape[0], out_channels, self.output_size, self.output_size)
        return out if bias is None else out + bias

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                + (f", groups={self.groups}" if self.groups > 1 else "")
                + (f", backend={self.backend!r}" if self.backend else ""))
