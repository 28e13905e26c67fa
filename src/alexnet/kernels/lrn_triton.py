"""Cross-channel LRN as fused Triton kernels (forward and backward), for CUDA tensors.

The reference formulation in `alexnet.models.layers` (a band-matrix product) is exact and
runs anywhere, but costs several passes over the activations plus a [C, C] product per
pixel. Here each program loads a tile of pixels x all channels once and forms every window
sum from shifted, cached reads of the same tile: one read of x and one write of y forward.

Maths (window W(i) = channels i-n/2 .. i+(n-1)/2 inside i's group, w = alpha' per term):
    d_i  = k + w * sum_{j in W(i)} x_j^2          y_i = x_i * d_i^-beta
    dx_i = g_i * d_i^-beta - 2 w beta x_i * sum_{c : i in W(c)} g_c x_c d_c^(-beta-1)
For odd n the windows are symmetric (i in W(c) <=> c in W(i)), so the backward is two
passes: t_c = g_c x_c d_c^(-beta-1), then dx from shifted reads of t. Statistics are
computed in fp32 whatever the input dtype.

Set TRITON_INTERPRET=1 before importing this module to run the kernels on CPU tensors
(that is how the tests check them without a GPU).
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

BLOCK_PIXELS = 32


@triton.jit
def _window_sum(ptr, n, hw, c, pixel_mask, C, group_size, s_n, s_hw, s_c,
                SIZE: tl.constexpr, SQUARE: tl.constexpr, BLOCK_P: tl.constexpr,
                BLOCK_C: tl.constexpr):
    """sum over the channel window of each (pixel, channel): [BLOCK_P, BLOCK_C] fp32."""
    total = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    group = c // group_size
    for step in tl.static_range(SIZE):
        other = c + (step - SIZE // 2)
        ok = (other >= 0) & (other < C) & (other // group_size == group)
        offs = n[:, None] * s_n + hw[:, None] * s_hw + other[None, :] * s_c
        v = tl.load(ptr + offs, mask=pixel_mask[:, None] & ok[None, :], other=0.0)
        v = v.to(tl.float32)
        total += v * v if SQUARE else v
    return total


@triton.jit
def _tile(P, HW, C, s_n, s_hw, s_c, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's BLOCK_P pixels x all channels: indices, masks and element offsets."""
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.arange(0, BLOCK_C)
    pixel_mask = p < P
    n, hw = p // HW, p % HW
    mask = pixel_mask[:, None] & (c < C)[None, :]
    offs = n[:, None] * s_n + hw[:, None] * s_hw + c[None, :] * s_c
    return n, hw, c, pixel_mask, mask, offs


@triton.jit
def _x_and_denominator(x_ptr, n, hw, c, pixel_mask, mask, offs, C, group_size, s_n, s_hw, s_c,
                       k, w, SIZE: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """The tile of x and its denominators d = k + w * window sum of x^2, both fp32."""
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    d = k + w * _window_sum(x_ptr, n, hw, c, pixel_mask, C, group_size, s_n, s_hw, s_c,
                            SIZE, True, BLOCK_P, BLOCK_C)
    return x, d


@triton.jit
def _lrn_forward_kernel(x_ptr, y_ptr, P, HW, C, group_size, s_n, s_hw, s_c,
                        k, w, beta, SIZE: tl.constexpr, BLOCK_P: tl.constexpr,
                        BLOCK_C: tl.constexpr):
    n, hw, c, pixel_mask, mask, offs = _tile(P, HW, C, s_n, s_hw, s_c, BLOCK_P, BLOCK_C)
    x, d = _x_and_denominator(x_ptr, n, hw, c, pixel_mask, mask, offs, C, group_size,
                              s_n, s_hw, s_c, k, w, SIZE, BLOCK_P, BLOCK_C)
    y = x * tl.exp2(-beta * tl.log2(d))
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _lrn_backward_t_kernel(x_ptr, g_ptr, t_ptr, P, HW, C, group_size, s_n, s_hw, s_c,
                           k, w, beta, SIZE: tl.constexpr, BLOCK_P: tl.constexpr,
                           BLOCK_C: tl.constexpr):
    """t = g * x * d^(-beta-1), written in fp32 with the layout of x."""
    n, hw, c, pixel_mask, mask, offs = _tile(P, HW, C, s_n, s_hw, s_c, BLOCK_P, BLOCK_C)
    x, d = _x_and_denominator(x_ptr, n, hw, c, pixel_mask, mask, offs, C, group_size,
                              s_n, s_hw, s_c, k, w, SIZE, BLOCK_P, BLOCK_C)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    t = g * x * tl.exp2((-beta - 1.0) * tl.log2(d))
    tl.store(t_ptr + offs, t, mask=mask)


@triton.jit
def _lrn_backward_dx_kernel(x_ptr, g_ptr, t_ptr, dx_ptr, P, HW, C, group_size, s_n, s_hw, s_c,
                            k, w, beta, SIZE: tl.constexpr, BLOCK_P: tl.constexpr,
                            BLOCK_C: tl.constexpr):
    n, hw, c, pixel_mask, mask, offs = _tile(P, HW, C, s_n, s_hw, s_c, BLOCK_P, BLOCK_C)
    x, d = _x_and_denominator(x_ptr, n, hw, c, pixel_mask, mask, offs, C, group_size,
                              s_n, s_hw, s_c, k, w, SIZE, BLOCK_P, BLOCK_C)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    t_sum = _window_sum(t_ptr, n, hw, c, pixel_mask, C, group_size, s_n, s_hw, s_c,
                        SIZE, False, BLOCK_P, BLOCK_C)
    dx = g * tl.exp2(-beta * tl.log2(d)) - 2.0 * w * beta * x * t_sum
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


def _layout(x: torch.Tensor) -> tuple[int, int, int, int, int, int]:
    """(P, HW, C, s_n, s_hw, s_c) for an NCHW or channels_last 4-d tensor."""
    n, c, h, w = x.shape
    s_n, s_c, s_h, s_w = x.stride()
    if s_h != w * s_w:  # H and W must flatten to one uniformly strided axis
        raise ValueError("LRN kernel needs a contiguous or channels_last input")
    return n * h * w, h * w, c, s_n, s_w, s_c


def _launch(kernel, x: torch.Tensor, *tensors, size: int, groups: int, k: float, w: float,
            beta: float) -> None:
    P, HW, C, s_n, s_hw, s_c = _layout(x)
    grid = (triton.cdiv(P, BLOCK_PIXELS),)
    # Triton launches on the current CUDA device: make it x's (tower b's norm runs on
    # cuda:1 while cuda:0 is current in `TowersOnDevices`); the interpreter takes CPU tensors.
    with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
        kernel[grid](x, *tensors, P, HW, C, C // groups, s_n, s_hw, s_c, k, w, beta,
                     SIZE=size, BLOCK_P=BLOCK_PIXELS, BLOCK_C=triton.next_power_of_2(C))


def _prepare(x: torch.Tensor) -> torch.Tensor:
    if x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last):
        return x
    return x.contiguous()


def lrn_forward(x: torch.Tensor, size: int, groups: int, k: float, w: float,
                beta: float) -> torch.Tensor:
    x = _prepare(x)
    y = torch.empty_like(x)  # keeps x's memory format
    _launch(_lrn_forward_kernel, x, y, size=size, groups=groups, k=k, w=w, beta=beta)
    return y


def lrn_backward(x: torch.Tensor, grad: torch.Tensor, size: int, groups: int, k: float,
                 w: float, beta: float) -> torch.Tensor:
    x = _prepare(x)
    if grad.stride() != x.stride():  # the kernels index every tensor with x's strides
        grad = torch.empty_like(x, dtype=grad.dtype).copy_(grad)
    t = torch.empty_like(x, dtype=torch.float32)
    _launch(_lrn_backward_t_kernel, x, grad, t, size=size, groups=groups, k=k, w=w, beta=beta)
    dx = torch.empty_like(x)
    _launch(_lrn_backward_dx_kernel, x, grad, t, dx, size=size, groups=groups, k=k, w=w,
            beta=beta)
    return dx


# As custom operators, torch.compile treats the kernels as opaque calls instead of breaking
# the graph, and autograd knows the backward.
@torch.library.custom_op("alexnet::lrn", mutates_args=())
def lrn(x: torch.Tensor, size: int, groups: int, k: float, w: float, beta: float) -> torch.Tensor:
    return lrn_forward(x, size, groups, k, w, beta)


@lrn.register_fake
def _(x, size, groups, k, w, beta):
    return torch.empty_like(x)


@torch.library.custom_op("alexnet::lrn_backward", mutates_args=())
def lrn_grad(x: torch.Tensor, grad: torch.Tensor, size: int, groups: int, k: float, w: float,
             beta: float) -> torch.Tensor:
    return lrn_backward(x, grad, size, groups, k, w, beta)


@lrn_grad.register_fake
def _(x, grad, size, groups, k, w, beta):
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output):
    x, size, groups, k, w, beta = inputs
    ctx.save_for_backward(x)
    ctx.params = (size, groups, k, w, beta)


def _backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return lrn_grad(x, grad, *ctx.params), None, None, None, None, None


lrn.register_autograd(_backward, setup_context=_setup_context)
