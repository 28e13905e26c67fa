"""Locally connected layers as one batched GEMM over output positions, without im2col.

`F.unfold` + `einsum` (the plain formulation) writes the [N, C*k*k, L] patch matrix, copies
it again into the [L, N, C*k*k] order a batched product needs, and its backward goes through
`col2im` plus more copies: on a CPU those copies cost several times the product itself
(about 40% of a training step of cuda-convnet's 11% net). Here:

    x [N, C, H, W] (any layout) -> xp [N, H+2p, W+2p, C], zero-padded, channels last
    patches [L, N, k*k*C]: one gather from a strided view of xp (positions L = Ho*Wo)
    out [L, N, O] = bias [L, 1, O] + patches @ weight[l]^T          (one baddbmm)
    backward: dW = dout^T @ patches, dpatches = dout @ W (two bmm), and dx as the k*k
              shifted slices of dpatches added into a padded buffer (no col2im)

The weight is [L, O, k*k*C], its fan-in in (kh, kw, c) order: the order of the gathered
patches, so the products read it as it is. Under autocast the compute dtype is autocast's
(bf16 on a CPU); products accumulate in fp32 inside the BLAS.
"""

from __future__ import annotations

import torch


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype autocast would run a matrix product in, else x's own."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def _geometry(x: torch.Tensor, kernel: int, stride: int, padding: int):
    n, c, h, w = x.shape
    out_h = (h + 2 * padding - kernel) // stride + 1
    out_w = (w + 2 * padding - kernel) // stride + 1
    return n, c, h, w, out_h, out_w


class _LocallyConnected(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, kernel: int, stride: int, padding: int, dtype):
        n, c, h, w, out_h, out_w = _geometry(x, kernel, stride, padding)
        positions, out_channels, fan_in = weight.shape
        k, s, p = kernel, stride, padding
        padded = x.new_zeros((n, h + 2 * p, w + 2 * p, c), dtype=dtype)
        padded[:, p:p + h, p:p + w].copy_(x.permute(0, 2, 3, 1))
        s_n, s_h, s_w, s_c = padded.stride()
        windows = padded.as_strided((out_h, out_w, n, k, k, c),
                                    (s * s_h, s * s_w, s_n, s_h, s_w, s_c))
        patches = windows.reshape(positions, n, fan_in)            # the one gather
        w_c = weight.to(dtype)
        if bias is None:
            out = torch.bmm(patches, w_c.transpose(1, 2))
        else:
            b = bias.to(dtype).permute(1, 2, 0).reshape(positions, 1, out_channels)
            out = torch.baddbmm(b, patches, w_c.transpose(1, 2))
        ctx.save_for_backward(patches, w_c)
        ctx.geometry = (n, c, h, w, out_h, out_w, k, s, p)
        ctx.dtypes = (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        # [L, N, O] -> [N, O, Ho, Wo] stored channels last (a new tensor, never a view of
        # `out`: autograd forbids in-place changes, such as a ReLU's, to views made here)
        y = torch.empty((n, out_channels, out_h, out_w), dtype=dtype, device=x.device,
                        memory_format=torch.channels_last)
        return y.copy_(out.view(out_h, out_w, n, out_channels).permute(2, 3, 0, 1))

    @staticmethod
    def backward(ctx, grad):
        patches, w_c = ctx.saved_tensors
        n, c, h, w, out_h, out_w, k, s, p = ctx.geometry
        x_dtype, w_dtype, b_dtype = ctx.dtypes
        positions, out_channels, fan_in = w_c.shape
        g = torch.empty((out_h, out_w, n, out_channels), dtype=patches.dtype,
                        device=grad.device)
        g.copy_(grad.permute(2, 3, 0, 1))
        g = g.view(positions, n, out_channels)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(g.transpose(1, 2), patches).to(w_dtype)   # [L, O, k*k*C]
        if ctx.needs_input_grad[2]:
            total = g.sum(1, dtype=torch.promote_types(g.dtype, torch.float32))  # [L, O]
            grad_b = total.view(out_h, out_w, out_channels).permute(2, 0, 1).to(b_dtype)
            grad_b = grad_b.contiguous()
        if ctx.needs_input_grad[0]:
            d_patches = torch.bmm(g, w_c).view(out_h, out_w, n, k, k, c)
            d_padded = grad.new_zeros((n, h + 2 * p, w + 2 * p, c), dtype=patches.dtype)
            for i in range(k):
                for j in range(k):
                    rows = slice(i, i + s * (out_h - 1) + 1, s)
                    cols = slice(j, j + s * (out_w - 1) + 1, s)
                    d_padded[:, rows, cols] += d_patches[:, :, :, i, j].permute(2, 0, 1, 3)
            grad_x = d_padded[:, p:p + h, p:p + w].permute(0, 3, 1, 2)
            grad_x = grad_x.to(x_dtype, memory_format=torch.channels_last)
        return grad_x, grad_w, grad_b, None, None, None, None


def locally_connected(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      kernel: int, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """out[n, o, i, j] = bias[o, i, j] + sum over the k x k window at (i, j) and the input
    channels of x times weight[(i, j), o, (kh, kw, c)]; returned channels last."""
    dtype = compute_dtype(x)
    with torch.autocast(x.device.type, enabled=False):
        return _LocallyConnected.apply(x, weight, bias, kernel, stride, padding, dtype)
