"""The fast path is decided in one place: bf16 where the hardware has it, channels_last."""

from __future__ import annotations

import pytest
import torch

from alexnet.engine import fast_path
from alexnet.engine.fast_path import amp_dtype, prepare_for_inference, use_channels_last
from alexnet.models import build_model

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_auto_uses_bf16_on_cpus_with_native_bf16_only(native, monkeypatch):
    monkeypatch.setattr(fast_path, "cpu_has_native_bf16", lambda: native)
    assert amp_dtype("auto", CPU) == (torch.bfloat16 if native else None)
    assert amp_dtype("bf16", CPU) == torch.bfloat16 and amp_dtype("none", CPU) is None
    assert amp_dtype("auto", torch.device("cuda")) == torch.bfloat16


def test_channels_last_is_the_default_and_can_be_refused():
    assert use_channels_last(None, CPU) and use_channels_last(None, torch.device("cuda"))
    assert not use_channels_last(False, CPU) and use_channels_last(True, CPU)


def test_prepare_for_inference_sets_the_layout_and_keeps_the_outputs(monkeypatch):
    monkeypatch.setattr(fast_path, "cpu_has_native_bf16", lambda: False)
    torch.manual_seed(0)
    model = build_model("cifar-conv-local").eval()
    x = torch.randn(4, 3, 24, 24)
    before = model(x)
    assert prepare_for_inference(model) is None          # fp32 where bf16 is not native
    assert model.features.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x.contiguous(memory_format=torch.channels_last)), before,
                               rtol=1e-4, atol=1e-5)


def test_cpu_flags_are_read_from_proc_cpuinfo(monkeypatch, tmp_path):
    import builtins

    fake = tmp_path / "cpuinfo"
    fake.write_text("processor : 0\nflags : fpu avx512f avx512_bf16\n")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: real_open(
        fake if path == "/proc/cpuinfo" else path, *a, **k))
    monkeypatch.setattr(fast_path.sys, "platform", "linux")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)   # a cap would hide the flags
    fast_path.cpu_has_native_bf16.cache_clear()
    try:
        assert fast_path.cpu_has_native_bf16()
        fake.write_text("processor : 0\nflags : fpu avx2\n")
        fast_path.cpu_has_native_bf16.cache_clear()
        assert not fast_path.cpu_has_native_bf16()
    finally:
        fast_path.cpu_has_native_bf16.cache_clear()


def test_the_command_flushes_subnormals_to_zero():
    """`alexnet ...` treats subnormal floats as zero (a saturated tanh net's exp() makes them,
    and they are many times slower to compute with); normal numbers are untouched."""
    from alexnet.cli import main

    try:
        if not torch.set_flush_denormal(False):
            pytest.skip("torch has no flush-to-zero mode to set on this CPU")
        subnormal = torch.tensor([1e-40])              # made unflushed (with FTZ it is 0)
        assert (subnormal * 1.0).item() > 0            # kept: PyTorch's default
        main(["models"])
        assert (subnormal * 1.0).item() == 0
        assert (torch.tensor([1e-30]) * 1.0).item() == pytest.approx(1e-30)
    finally:
        torch.set_flush_denormal(True)                 # as every other command leaves it
