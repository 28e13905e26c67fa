"""LRN, within-map norm and the locally connected layer against slow, explicit references."""

import pytest
import torch
from torch import nn

from alexnet.models.layers import LocallyConnected2d, LocalResponseNorm, WithinMapNorm

pytestmark = pytest.mark.numerics


def lrn_reference(x, size, alpha, beta, k, groups=1, alpha_per_term=True):
    """The paper's formula, one output value at a time."""
    n, c, h, w = x.shape
    per_group = c // groups
    weight = alpha / size if alpha_per_term else alpha
    out = torch.empty_like(x)
    for i in range(c):
        first = i // per_group * per_group
        lo, hi = max(first, i - size // 2), min(first + per_group - 1, i + (size - 1) // 2)
        total = sum(x[:, j] ** 2 for j in range(lo, hi + 1))
        out[:, i] = x[:, i] / (k + weight * total) ** beta
    return out


def within_map_reference(x, size, alpha, beta, k):
    n, c, h, w = x.shape
    out = torch.empty_like(x)
    for r in range(h):
        for s in range(w):
            r0, r1 = max(0, r - size // 2), min(h, r + (size - 1) // 2 + 1)
            s0, s1 = max(0, s - size // 2), min(w, s + (size - 1) // 2 + 1)
            total = (x[:, :, r0:r1, s0:s1] ** 2).sum(dim=(2, 3))
            out[:, :, r, s] = x[:, :, r, s] / (k + alpha / size**2 * total) ** beta
    return out


def local_reference(layer, x):
    """Each output position with its own weight matrix, by explicit loops."""
    k, p, s = layer.kernel_size, layer.padding, layer.stride
    padded = nn.functional.pad(x, (p, p, p, p))
    size = layer.output_size
    out = torch.empty(x.shape[0], layer.out_channels, size, size, dtype=x.dtype)
    for r in range(size):
        for c in range(size):
            window = padded[:, :, r * s:r * s + k, c * s:c * s + k]   # fan-in (kh, kw, c)
            patch = window.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
            out[:, :, r, c] = patch @ layer.weight[r * size + c].T + layer.bias[:, r, c]
    return out


LRN_BACKENDS = ["band", "reference"]
LAYOUTS = [torch.contiguous_format, torch.channels_last]


@pytest.mark.parametrize("backend", LRN_BACKENDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("alpha_per_term", [True, False])
def test_lrn_matches_reference(backend, layout, groups, alpha_per_term):
    torch.manual_seed(0)
    x = torch.randn(2, 12, 5, 4, dtype=torch.float64) * 30  # large enough for the norm to bite
    x = x.contiguous(memory_format=layout)
    layer = LocalResponseNorm(12, 5, 1e-4, 0.75, 2.0, groups, alpha_per_term,
                              backend=backend).double()
    expected = lrn_reference(x, 5, 1e-4, 0.75, 2.0, groups, alpha_per_term)
    torch.testing.assert_close(layer(x), expected, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(layer(x), x / 2.0**0.75)  # the window term matters here


@pytest.mark.parametrize("size,beta", [(9, 0.75), (4, 0.6)])
def test_lrn_band_gradient_for_the_cifar_norm_and_even_windows(size, beta):
    # size 9 is cuda-convnet's CIFAR norm; an even size has asymmetric windows, whose
    # backward needs the band's transpose.
    torch.manual_seed(5)
    x = (torch.randn(2, 10, 3, 3, dtype=torch.float64) * 10).requires_grad_()
    layer = LocalResponseNorm(10, size, 1e-1, beta, 1.0, groups=2, backend="band").double()
    grad = torch.randn_like(x)
    ours = torch.autograd.grad(layer(x), x, grad)[0]
    expected = torch.autograd.grad(lrn_reference(x, size, 1e-1, beta, 1.0, 2), x, grad)[0]
    torch.testing.assert_close(ours, expected)


@pytest.mark.parametrize("backend", LRN_BACKENDS)
def test_lrn_with_the_preceding_relu_fused_in(backend):
    torch.manual_seed(9)
    x = (torch.randn(2, 10, 3, 3, dtype=torch.float64) * 10).requires_grad_()
    layer = LocalResponseNorm(10, 5, 1e-1, 0.75, 1.0, groups=2, backend=backend).double()
    with_relu = LocalResponseNorm(10, 5, 1e-1, 0.75, 1.0, groups=2, relu_first=True,
                                  backend=backend).double()
    grad = torch.randn_like(x)
    fused = with_relu(x)
    separate = layer(nn.functional.relu(x))
    torch.testing.assert_close(fused, separate)
    torch.testing.assert_close(torch.autograd.grad(fused, x, grad)[0],
                               torch.autograd.grad(separate, x, grad)[0])


def test_lrn_band_in_bf16_keeps_the_small_denominator_term():
    # d = 1 + (a small number): in bf16 it would round to 1; the band kernel keeps it in
    # fp32, so its bf16 output is the fp32 result rounded once.
    torch.manual_seed(6)
    x = (torch.rand(4, 64, 6, 6) * 20).contiguous(memory_format=torch.channels_last)
    layer = LocalResponseNorm(64, 9, 1e-3, 0.75, 1.0, backend="band")
    expected = layer(x)
    assert (x - expected).abs().max() > 1   # the norm bites
    xb = x.bfloat16().requires_grad_()
    got = layer(xb)
    assert got.dtype == torch.bfloat16 and got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got.float(), expected, rtol=8e-3, atol=1e-2)
    grad = torch.randn_like(x)
    got.backward(grad.bfloat16())
    reference = torch.autograd.grad(layer(x.requires_grad_()), x, grad)[0]
    torch.testing.assert_close(xb.grad.float(), reference, rtol=2e-2, atol=2e-2)


def test_lrn_equals_torch_for_one_group():
    x = torch.randn(3, 96, 7, 7) * 20
    ours = LocalResponseNorm(96, 5, 1e-4, 0.75, 2.0)
    theirs = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)


def test_lrn_groups_keep_towers_apart():
    x = torch.randn(1, 8, 3, 3) * 40
    layer = LocalResponseNorm(8, 5, 1e-2, 0.75, 2.0, groups=2)
    changed = x.clone()
    changed[:, 3] *= 10  # last channel of tower a
    diff = (layer(changed) - layer(x)).abs().amax(dim=(0, 2, 3))
    assert (diff[1:4] > 0).all()  # channels 1-5 are in channel 3's window...
    assert diff[0] == 0 and (diff[4:] == 0).all()  # ...but 4 and 5 belong to tower b
    one_tower = LocalResponseNorm(8, 5, 1e-2, 0.75, 2.0, groups=1)
    assert ((one_tower(changed) - one_tower(x)).abs().amax(dim=(0, 2, 3))[4:6] > 0).all()


@pytest.mark.parametrize("backend", LRN_BACKENDS)
@pytest.mark.parametrize("groups", [1, 2])
def test_lrn_gradcheck_and_reference_gradient(backend, groups):
    torch.manual_seed(1)
    x = (torch.randn(1, 6, 3, 3, dtype=torch.float64) * 10).requires_grad_()
    layer = LocalResponseNorm(6, 5, 1e-2, 0.75, 2.0, groups, backend=backend).double()
    assert torch.autograd.gradcheck(layer, (x,))
    grad = torch.randn_like(x)
    ours = torch.autograd.grad(layer(x), x, grad)[0]
    reference = torch.autograd.grad(lrn_reference(x, 5, 1e-2, 0.75, 2.0, groups), x, grad)[0]
    torch.testing.assert_close(ours, reference)


def test_within_map_norm_matches_reference_and_gradcheck():
    torch.manual_seed(2)
    x = (torch.randn(2, 3, 6, 5, dtype=torch.float64) * 20).requires_grad_()
    layer = WithinMapNorm(3, alpha=1e-2, beta=0.75, k=1.0)
    torch.testing.assert_close(layer(x), within_map_reference(x, 3, 1e-2, 0.75, 1.0))
    assert torch.autograd.gradcheck(layer, (x,))


LC_BACKENDS = ["gemm", "unfold"]


@pytest.mark.parametrize("backend", LC_BACKENDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 0)])
def test_locally_connected_matches_reference(backend, layout, stride, padding):
    torch.manual_seed(3)
    layer = LocallyConnected2d(3, 4, input_size=6, kernel_size=3, stride=stride,
                               padding=padding, backend=backend).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64).contiguous(memory_format=layout)
    x.requires_grad_()
    torch.testing.assert_close(layer(x), local_reference(layer, x))
    grad = torch.randn_like(layer(x))
    params = (x, layer.weight, layer.bias)
    ours = torch.autograd.grad(layer(x), params, grad)
    reference = torch.autograd.grad(local_reference(layer, x), params, grad)
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b)


def test_locally_connected_gemm_under_bf16_autocast():
    # autocast runs the products in bf16 and returns fp32 gradients for the fp32 parameters.
    torch.manual_seed(7)
    layer = LocallyConnected2d(16, 8, input_size=6, kernel_size=3, padding=1)
    x = torch.randn(4, 16, 6, 6).contiguous(memory_format=torch.channels_last)
    expected = local_reference(layer, x)
    with torch.autocast("cpu", torch.bfloat16):
        got = layer(x)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, rtol=3e-2, atol=3e-2)
    got.float().sum().backward()
    assert layer.weight.grad.dtype == torch.float32 and layer.bias.grad.dtype == torch.float32
    reference = torch.autograd.grad(local_reference(layer, x).sum(), layer.weight)[0]
    torch.testing.assert_close(layer.weight.grad, reference, rtol=3e-2, atol=3e-1)


@pytest.mark.parametrize("backend", LC_BACKENDS)
def test_locally_connected_gradcheck_and_unshared_weights(backend):
    torch.manual_seed(4)
    layer = LocallyConnected2d(2, 3, input_size=4, kernel_size=3, padding=1,
                               backend=backend).double()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    # The same patch at two positions gives different outputs: weights are not shared.
    flat = torch.ones(1, 2, 4, 4, dtype=torch.float64)
    out = layer(flat)
    assert not torch.allclose(out[..., 1, 1], out[..., 1, 2])
    assert layer.weight.shape == (16, 3, 18)


@pytest.mark.parametrize("backend", LC_BACKENDS)
def test_grouped_locally_connected_is_the_block_diagonal_ungrouped_layer(backend):
    """groups=2: output group g reads input group g only, i.e. the ungrouped layer whose
    weight is zero between groups (fan-in in (kh, kw, c) order)."""
    torch.manual_seed(5)
    grouped = LocallyConnected2d(4, 6, input_size=5, kernel_size=3, padding=1, groups=2,
                                 backend=backend).double()
    assert grouped.weight.shape == (25, 6, 9 * 2)
    full = LocallyConnected2d(4, 6, input_size=5, kernel_size=3, padding=1).double()
    with torch.no_grad():
        full.weight.zero_()
        per_tap = full.weight.view(25, 6, 9, 4)               # [L, O, kh*kw, c]
        for g in range(2):
            rows, channels = slice(3 * g, 3 * g + 3), slice(2 * g, 2 * g + 2)
            per_tap[:, rows, :, channels] = grouped.weight[:, rows].view(25, 3, 9, 2)
        full.bias.copy_(grouped.bias)
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(grouped(x), local_reference(full, x))
    grad = torch.randn(2, 6, 5, 5, dtype=torch.float64)
    ours = torch.autograd.grad(grouped(x), x, grad)[0]
    torch.testing.assert_close(ours, torch.autograd.grad(local_reference(full, x), x, grad)[0])
    with pytest.raises(ValueError, match="groups"):
        LocallyConnected2d(3, 4, input_size=5, kernel_size=3, groups=2)


def test_locally_connected_rejects_wrong_input_size():
    layer = LocallyConnected2d(2, 3, input_size=4, kernel_size=3, padding=1)
    with pytest.raises(ValueError, match="4x4"):
        layer(torch.zeros(1, 2, 5, 5))
