"""The layers AlexNet-era networks need that PyTorch does not ship in this form.

- `LocalResponseNorm`: the paper's cross-channel normalisation (§3.3), optionally per tower.
- `WithinMapNorm`: cuda-convnet's spatial ("within-map") response normalisation.
- `LocallyConnected2d`: a convolution whose weights are not shared across positions.
- `run_layers`: a Sequential's forward with each ReLU moved after the max-pool it precedes
  and fused into the norm it precedes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def tracing() -> bool:
    """Inside `torch.compile`, `torch.export` or `torch.jit.trace`: layers then take their
    plain formulation, which compilers fuse and exporters understand."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


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
    as the 2012 code normalised each GPU's maps separately.

    `backend`: "native" is one compiled C loop each way for channels-last float32/bf16 CPU
    tensors (`alexnet.kernels.lrn_native`, built on first use); "band" (any device)
    computes the window sums as one [C, C] band-matrix product and has a hand-written
    backward (`alexnet.kernels.lrn_band`); "triton" uses the fused kernels of
    `alexnet.kernels.lrn_triton` (CUDA, odd sizes); "auto" picks triton where it can run,
    else native where it takes x, else band. "reference" is the plain formula under
    autograd, which the others are tested against.
    """

    backends = ("auto", "native", "band", "triton", "reference")

    def __init__(self, channels: int, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                 k: float = 2.0, groups: int = 1, alpha_per_term: bool = True,
                 backend: str = "auto"):
        super().__init__()
        if backend not in self.backends:
            raise ValueError(f"backend must be one of {self.backends}, got {backend!r}")
        self.backend = backend
        if channels % groups:
            raise ValueError(f"{channels} channels do not split into {groups} groups")
        self.channels, self.size, self.alpha, self.beta, self.k = channels, size, alpha, beta, k
        self.groups, self.alpha_per_term = groups, alpha_per_term
        # A constant, not a parameter: kept out of the state dict, moved with the module.
        self.register_buffer("band", channel_window_matrix(channels, size, groups),
                             persistent=False)

    @property
    def term_weight(self) -> float:
        """The weight of each squared activation in the denominator."""
        return self.alpha / self.size if self.alpha_per_term else self.alpha

    def use_triton(self, x: torch.Tensor) -> bool:
        if self.backend in ("native", "band", "reference") or self.size % 2 == 0:
            return False                    # the kernel needs symmetric windows
        from alexnet.kernels import triton_available

        return self.backend == "triton" or (x.is_cuda and triton_available())

    def forward(self, x: torch.Tensor, relu_first: bool = False) -> torch.Tensor:
        """The norm of x, or with `relu_first` of relu(x): `run_layers` fuses the ReLU that
        precedes a norm into the CPU kernels' loops."""
        if self.backend in ("auto", "native", "band") and not tracing() and \
                not self.use_triton(x):
            from alexnet.kernels import lrn_native

            if self.backend != "band" and lrn_native.supports(x):
                return lrn_native.lrn_native(x, self.size, self.groups, self.k,
                                             self.term_weight, self.beta, relu_first)
            from alexnet.kernels.lrn_band import lrn_band

            return lrn_band(x, self.band, self.k, self.term_weight, self.beta, relu_first)
        if relu_first:
            x = F.relu(x)
        if self.use_triton(x):
            from alexnet.kernels.lrn_triton import lrn

            return lrn(x, self.size, self.groups, self.k, self.term_weight, self.beta)
        # The reference. [N, C, H, W] -> [N, H, W, C] is free for channels_last tensors;
        # the window sum is then a [NHW, C] x [C, C] product.
        band = self.band.to(x.dtype)
        window_sum = torch.matmul(x.square().movedim(1, -1), band).movedim(-1, 1)
        return x * (self.k + self.term_weight * window_sum).pow(-self.beta)

    def extra_repr(self) -> str:
        return (f"{self.channels}, size={self.size}, alpha={self.alpha}, beta={self.beta}, "
                f"k={self.k}, groups={self.groups}, alpha_per_term={self.alpha_per_term}")


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

    `backend`: "gemm" (default) runs `alexnet.kernels.local_gemm`, one batched product over
    positions with a hand-written backward; "unfold" is the plain `F.unfold` + `einsum`
    formulation, the reference it is tested against.
    """

    backends = ("gemm", "unfold")

    def __init__(self, in_channels: int, out_channels: int, input_size: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, bias: bool = True, backend: str = "gemm",
                 groups: int = 1):
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
        if self.backend == "gemm" and not tracing():
            from alexnet.kernels.local_gemm import locally_connected

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
                + (f", groups={self.groups}" if self.groups > 1 else ""))


def run_layers(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """`layers(x)`, reordered and fused where the result does not change:

    - a ReLU directly before a max-pool (or separated from it by identities only: a dropped
      norm) runs after the pool: max(relu(a), relu(b)) = relu(max(a, b)) exactly, and the
      gradient reaches the same position, while the ReLU and its backward touch a quarter of
      the values. (tanh is monotone too, but its rounding is not guaranteed to be.)
    - a ReLU directly before a cross-map norm runs inside the norm's kernels
      (`LocalResponseNorm(x, relu_first=True)`): no pass of its own, forward or backward.
    """
    modules = [m for m in layers if not isinstance(m, nn.Identity)]
    for i in range(len(modules) - 1):
        if isinstance(modules[i], nn.ReLU) and isinstance(modules[i + 1], nn.MaxPool2d):
            modules[i], modules[i + 1] = modules[i + 1], modules[i]
    i = 0
    while i < len(modules):
        layer = modules[i]
        if isinstance(layer, nn.ReLU) and i + 1 < len(modules) \
                and isinstance(modules[i + 1], LocalResponseNorm):
            x = modules[i + 1](x, relu_first=True)
            i += 2
        else:
            x = layer(x)
            i += 1
    return x
