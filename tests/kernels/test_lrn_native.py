"""The compiled CPU LRN kernel (`alexnet.kernels.lrn_native`) against the plain formula."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alexnet.kernels import lrn_native
from alexnet.models.layers import LocalResponseNorm

pytestmark = pytest.mark.numerics

CHANNELS_LAST = torch.channels_last


@pytest.fixture(scope="module", autouse=True)
def built():
    if lrn_native.library() is None:
        pytest.skip("no C compiler here: the kernel cannot be built (the band form runs)")


def norms(channels, size, groups, alpha=1e-3, beta=0.75, k=1.0, relu=False):
    return (LocalResponseNorm(channels, size, alpha, beta, k, groups, relu_first=relu,
                              backend="native"),
            LocalResponseNorm(channels, size, alpha, beta, k, groups, backend="reference"))


# the CIFAR nets' norm, the paper's two towers, an even window, a shape of no network
# (the kernel's generic loops), and position counts that are no multiple of its row blocks
@pytest.mark.parametrize("channels,size,groups,beta", [
    (64, 9, 1, 0.75), (96, 5, 2, 0.75), (256, 5, 2, 0.75), (10, 4, 1, 0.6), (12, 5, 2, 0.75)])
@pytest.mark.parametrize("relu", [False, True])
def test_float32_forward_and_gradient_match_the_reference(channels, size, groups, beta, relu):
    torch.manual_seed(channels + size)
    x = (torch.randn(3, channels, 5, 7) * 30).contiguous(memory_format=CHANNELS_LAST)
    native, reference = norms(channels, size, groups, beta=beta, relu=relu)
    assert lrn_native.supports(x)
    grad = torch.randn_like(x)
    xa, xb = x.clone().requires_grad_(), x.double().requires_grad_()
    got = native(xa)
    expected = reference.double()(torch.relu(xb) if relu else xb)
    assert (expected - xb).abs().max() > 1                     # the norm bites
    assert got.is_contiguous(memory_format=CHANNELS_LAST)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)
    got.backward(grad)
    expected.backward(grad.double())
    torch.testing.assert_close(xa.grad.double(), xb.grad, rtol=1e-4, atol=1e-5)


def test_bf16_is_the_fp32_result_rounded_once():
    # d = 1 + (a small number) would round to 1 in bf16: the kernel forms it in fp32.
    torch.manual_seed(6)
    x = (torch.rand(4, 64, 6, 6) * 20).contiguous(memory_format=CHANNELS_LAST)
    native, reference = norms(64, 9, 1)
    expected = reference(x.requires_grad_())
    xb = x.detach().bfloat16().requires_grad_()
    got = native(xb)
    assert got.dtype == torch.bfloat16 and got.is_contiguous(memory_format=CHANNELS_LAST)
    torch.testing.assert_close(got.float(), expected, rtol=8e-3, atol=1e-2)
    grad = torch.randn_like(x)
    got.backward(grad.bfloat16())
    torch.testing.assert_close(xb.grad.float(), torch.autograd.grad(expected, x, grad)[0],
                               rtol=2e-2, atol=2e-2)


def test_a_gradient_in_another_layout_and_any_thread_count():
    torch.manual_seed(3)
    x = (torch.randn(2, 64, 4, 4) * 30).contiguous(memory_format=CHANNELS_LAST)
    grad = torch.randn(2, 64, 4, 4)                       # NCHW, as a consumer may send it
    native, _ = norms(64, 9, 1)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            xa = x.clone().requires_grad_()
            native(xa).backward(grad)
            results.append(xa.grad)
    finally:
        torch.set_num_threads(threads)
    band = LocalResponseNorm(64, 9, 1e-3, 0.75, 1.0, backend="band")
    xb = x.clone().requires_grad_()
    band(xb).backward(grad)
    assert torch.equal(results[0], results[1])             # rows are independent
    torch.testing.assert_close(results[0], xb.grad, rtol=1e-5, atol=1e-6)


def test_tensors_it_does_not_take_go_to_the_band_form():
    x = torch.randn(2, 64, 3, 3) * 30
    assert not lrn_native.supports(x)                                # NCHW
    assert not lrn_native.supports(x.double().contiguous(memory_format=CHANNELS_LAST))
    assert not lrn_native.supports(torch.zeros(1, lrn_native.MAX_CHANNELS + 1, 1, 1))
    native, _ = norms(64, 9, 1)
    expected = nn.LocalResponseNorm(9, alpha=1e-3, beta=0.75, k=1.0)(x)
    torch.testing.assert_close(native(x), expected, rtol=1e-5, atol=1e-6)
