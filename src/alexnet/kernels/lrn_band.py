"""Cross-channel LRN on any device: band products plus fused pointwise loops.

On a CPU the compiled kernel of `lrn_native.py` replaces this for channels-last float32 and
bf16 tensors; this form runs for the others (NCHW, float64) and where no C compiler is found.

Autograd through the plain formula (square, window sum, scale, pow, multiply) keeps every
intermediate, runs `pow` forward and backward and, in bf16, adds a cast copy to most steps:
on a CPU it cost about a fifth of a training step of cuda-convnet's 11% net. Here (window
W(i) = channels i-n/2 .. i+(n-1)/2 inside i's group, w = alpha' per term):

    s_i  = sum_{j in W(i)} x_j^2           one [NHW, C] x [C, C] band product (x's dtype)
    p_i  = (k + w * s_i)^-beta,  y_i = x_i * p_i                    one fused loop
    t_c  = g_c * x_c * d_c^(-beta-1) = g_c * y_c / (k + w * s_c)     one fused loop
    r_i  = sum_{c : i in W(c)} t_c          the product with the band's transpose
    dx_i = g_i * p_i - 2 w beta x_i r_i                              one fused loop

The fused loops (`alexnet.kernels.pointwise`) compute in fp32 and form d = k + w * s there,
never storing it: in bf16, 1 + (a small number) would round to 1 and lose what LRN does.
The forward keeps p in x's dtype for the backward, which then needs no power or root (in
bf16 its rounding is that of the gradient itself). The products accumulate in fp32 inside
the BLAS.
"""

from __future__ import annotations

import torch

from alexnet.kernels.pointwise import fused


def window_sum(t: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
    """out[:, i] = sum_j band[j, i] * t[:, j] for t [N, C, H, W], in t's dtype and layout:
    a [NHW, C] x [C, C] product for channels-last t, [C, C] x [N, C, HW] otherwise."""
    n, c, h, w = t.shape
    if t.is_contiguous(memory_format=torch.channels_last):
        flat = t.permute(0, 2, 3, 1).reshape(-1, c)            # a view: [NHW, C]
        return torch.mm(flat, band).view(n, h, w, c).permute(0, 3, 1, 2)
    return torch.matmul(band.t(), t.reshape(n, c, h * w)).view(n, c, h, w)


def _inverse_power(d: torch.Tensor, beta: float) -> torch.Tensor:
    """d^-beta; for the paper's beta = 3/4 as rsqrt(d) * sqrt(rsqrt(d)), cheaper than pow."""
    if beta == 0.75:
        r = d.rsqrt()
        return r * r.sqrt()
    return d.pow(-beta)


def _wide(t: torch.Tensor) -> torch.Tensor:
    """t in at least fp32 (the fused loops' arithmetic)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def _input(x: torch.Tensor, relu: bool) -> torch.Tensor:
    """The norm's input in fp32: x, or relu(x) when the ReLU before the norm is fused in."""
    return _wide(x).clamp_min(0) if relu else _wide(x)


@fused
def _squares(x, relu: bool):
    return _input(x, relu).square().to(x.dtype)


@fused
def _forward(x, s, k: float, w: float, beta: float, relu: bool):
    p = _inverse_power(_wide(s) * w + k, beta)
    return (_input(x, relu) * p).to(x.dtype), p.to(x.dtype)


@fused
def _backward_t(g, y, s, k: float, w: float):
    return (_wide(g) * _wide(y) / (_wide(s) * w + k)).to(y.dtype)


@fused
def _backward_dx(g, x, p, r, c: float, relu: bool):
    dx = _wide(g) * _wide(p) - c * _input(x, relu) * _wide(r)
    if relu:       # the fused ReLU's backward: nothing reaches negative inputs
        dx = torch.where(_wide(x) > 0, dx, 0.0)
    return dx.to(x.dtype)


class _BandLRN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, band, k: float, w: float, beta: float, relu: bool):
        s = window_sum(_squares(x, relu) if relu else x.square(), band)
        y, p = _forward(x, s, k, w, beta, relu)
        ctx.save_for_backward(x, band, s, y, p)
        ctx.constants = (k, w, beta, relu)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, band, s, y, p = ctx.saved_tensors
        k, w, beta, relu = ctx.constants
        t = _backward_t(grad, y, s, k, w)             # g * x * d^(-beta-1) = g * y / d
        r = window_sum(t, band.t())
        dx = _backward_dx(grad, x, p, r, 2.0 * w * beta, relu)
        return dx, None, None, None, None, None


def lrn_band(x: torch.Tensor, band: torch.Tensor, k: float, w: float, beta: float,
             relu: bool = False) -> torch.Tensor:
    """y = x * (k + w * window sum of x^2)^-beta across channels; band [C, C] says which
    channels are in each window (see `alexnet.models.layers.channel_window_matrix`). With
    `relu`, x is first replaced by relu(x) inside the same loops (the ReLU that precedes
    the norm in these networks, without a pass of its own forward or backward)."""
    with torch.autocast(x.device.type, enabled=False):
        return _BandLRN.apply(x, band.to(x.dtype), k, w, beta, relu)
