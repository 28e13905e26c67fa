"""The fused Triton LRN equals the reference LRN, forward and backward.

On the CPU the kernels run under Triton's interpreter (in a subprocess, as the interpreter
must be switched on before Triton compiles anything); on a GPU they run for real.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip("triton")

CHECK = textwrap.dedent("""
    import json, torch
    from alexnet.kernels.lrn_triton import lrn
    from alexnet.models.layers import LocalResponseNorm
    torch.manual_seed(0)
    results = []
    for channels, groups, channels_last in [(12, 1, False), (12, 2, True), (10, 2, False)]:
        x = torch.randn(2, channels, 5, 3, dtype=torch.float64) * 20
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        reference = LocalResponseNorm(channels, 5, 1e-2, 0.75, 2.0, groups, backend="reference")
        kernel = LocalResponseNorm(channels, 5, 1e-2, 0.75, 2.0, groups, backend="triton")
        xr, xk = x.clone().requires_grad_(), x.clone().requires_grad_()
        grad = torch.randn(x.shape, dtype=x.dtype)  # NCHW even where x is channels_last
        yr, yk = reference(xr), kernel(xk)
        gr = torch.autograd.grad(yr, xr, grad)[0]
        gk = torch.autograd.grad(yk, xk, grad)[0]
        results.append({"forward": (yr - yk).abs().max().item(),
                        "backward": (gr - gk).abs().max().item(),
                        "scale": gr.abs().max().item(),
                        "same_layout": yk.stride() == x.stride()})
    print(json.dumps(results))
""")


def test_kernel_matches_reference_in_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for case in json.loads(done.stdout.strip().splitlines()[-1]):
        assert case["forward"] < 1e-5          # the kernel computes in fp32
        assert case["backward"] < 1e-5 * max(1.0, case["scale"])
        assert case["same_layout"]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_matches_reference_on_the_gpu(dtype):
    from alexnet.models.layers import LocalResponseNorm

    torch.manual_seed(0)
    x = (torch.randn(8, 96, 55, 55, device="cuda") * 10).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    reference = LocalResponseNorm(96, groups=2, backend="reference").cuda()
    kernel = LocalResponseNorm(96, groups=2, backend="triton").cuda()
    xr, xk = x.float().clone().requires_grad_(), x.clone().requires_grad_()
    grad = torch.randn_like(xr)
    yr, yk = reference(xr), kernel(xk)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(yk.float(), yr, rtol=tolerance, atol=tolerance)
    gr = torch.autograd.grad(yr, xr, grad)[0]
    gk = torch.autograd.grad(yk, xk, grad.to(dtype))[0]
    torch.testing.assert_close(gk.float(), gr, rtol=tolerance, atol=tolerance)
