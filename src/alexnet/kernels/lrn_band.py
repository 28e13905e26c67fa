"""Cross-channel LRN for CPUs (any device works): band products plus fused pointwise loops.

Autograd through the plain formula (square, window sum, scale, pow, multiply) keeps every
intermediate, runs `pow` forward and backward and, in bf16, adds a cast copy to most steps:
on a CPU it cost about a fifth of a training step of cuda-convnet's 11% net. Here (window
W(i) = channels i-n/2 .. i+(n-1)/2 inside i's group, w = alpha' per term):

    s_i  = sum_{j in W(i)} x_j^2           one [NHW, C] x [C, C] band product (x's dtype)
    d_i  = k + w * s_i,  y_i = x_i * d_i^-beta                      one fused loop
    t_c  = g_c * x_c * d_c^(-beta-1)                                 one fused loop
    r_i  = sum_{c : i in W(c)} t_c          the product with the band's transpose
    dx_i = g_i * d_i^-beta - 2 w beta x_i r_i                        one fused loop

The fused loops (`alexnet.kernels.pointwise`) compute in fp32; d is formed inside them from
s, never stored: in bf16, d = 1 + (a small number) would round to 1 and lose what LRN does.
The backward keeps x and s (in x's dtype). The products accumulate in fp32 inside the BLAS.
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


@fused
def _forward(x, s, k: float, w: float, beta: float):
    return (_wide(x) * _inverse_power(_wide(s) * w + k, beta)).to(x.dtype)


@fused
def _backward_t(g, x, s, k: float, w: float, beta: float):
    d = _wide(s) * w + k
    return (_wide(g) * _wide(x) * _inverse_power(d, beta) / d).to(x.dtype)


@fused
def _backward_dx(g, x, s, r, k: float, w: float, beta: float):
    d = _wide(s) * w + k
    dx = _wide(g) * _inverse_power(d, beta) - (2.0 * w * beta) * _wide(x) * _wide(r)
    return dx.to(x.dtype)


class _BandLRN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, band, k: float, w: float, beta: float):
        s = window_sum(x.square(), band)
        ctx.save_for_backward(x, band, s)
        ctx.constants = (k, w, beta)
        return _forward(x, s, k, w, beta)

    @staticmethod
    def backward(ctx, grad):
        x, band, s = ctx.saved_tensors
        k, w, beta = ctx.constants
        t = _backward_t(grad, x, s, k, w, beta)
        r = window_sum(t, band.t())
        return _backward_dx(grad, x, s, r, k, w, beta), None, None, None, None


def lrn_band(x: torch.Tensor, band: torch.Tensor, k: float, w: float, beta: float
             ) -> torch.Tensor:
    """y = x * (k + w * window sum of x^2)^-beta across channels; band [C, C] says which
    channels are in each window (see `alexnet.models.layers.channel_window_matrix`)."""
    with torch.autocast(x.device.type, enabled=False):
        return _BandLRN.apply(x, band.to(x.dtype), k, w, beta)
