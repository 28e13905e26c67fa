"""LRN, within-map norm and the locally connected layer against slow, explicit references."""

import pytest
import torch
from torch import nn

from alexnet.models.layers import LocallyConnected2d, LocalResponseNorm, WithinMapNorm


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
            patch = padded[:, :, r * s:r * s + k, c * s:c * s + k].reshape(x.shape[0], -1)
            out[:, :, r, c] = patch @ layer.weight[r * size + c].T + layer.bias[:, r, c]
    return out


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("alpha_per_term", [True, False])
def test_lrn_matches_reference(groups, alpha_per_term):
    torch.manual_seed(0)
    x = torch.randn(2, 12, 5, 4, dtype=torch.float64) * 30  # large enough for the norm to bite
    layer = LocalResponseNorm(12, 5, 1e-4, 0.75, 2.0, groups, alpha_per_term).double()
    expected = lrn_reference(x, 5, 1e-4, 0.75, 2.0, groups, alpha_per_term)
    torch.testing.assert_close(layer(x), expected, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(layer(x), x / 2.0**0.75)  # the window term matters here


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


@pytest.mark.parametrize("groups", [1, 2])
def test_lrn_gradcheck_and_reference_gradient(groups):
    torch.manual_seed(1)
    x = (torch.randn(1, 6, 3, 3, dtype=torch.float64) * 10).requires_grad_()
    layer = LocalResponseNorm(6, 5, 1e-2, 0.75, 2.0, groups).double()
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


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 0)])
def test_locally_connected_matches_reference(stride, padding):
    torch.manual_seed(3)
    layer = LocallyConnected2d(3, 4, input_size=6, kernel_size=3, stride=stride,
                               padding=padding).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(layer(x), local_reference(layer, x))
    grad = torch.randn_like(layer(x))
    params = (x, layer.weight, layer.bias)
    ours = torch.autograd.grad(layer(x), params, grad)
    reference = torch.autograd.grad(local_reference(layer, x), params, grad)
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b)


def test_locally_connected_gradcheck_and_unshared_weights():
    torch.manual_seed(4)
    layer = LocallyConnected2d(2, 3, input_size=4, kernel_size=3, padding=1).double()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    # The same patch at two positions gives different outputs: weights are not shared.
    flat = torch.ones(1, 2, 4, 4, dtype=torch.float64)
    out = layer(flat)
    assert not torch.allclose(out[..., 1, 1], out[..., 1, 2])
    assert layer.weight.shape == (16, 3, 18)


def test_locally_connected_rejects_wrong_input_size():
    layer = LocallyConnected2d(2, 3, input_size=4, kernel_size=3, padding=1)
    with pytest.raises(ValueError, match="4x4"):
        layer(torch.zeros(1, 2, 5, 5))
