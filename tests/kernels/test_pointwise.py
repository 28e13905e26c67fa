"""Fused pointwise kernels: compiled where inductor works, the same arithmetic eagerly where
it does not (warned once, for that kind of call only), and inlined under an outer
torch.compile."""

from __future__ import annotations

import logging

import pytest
import torch

from alexnet.kernels import pointwise


def make():
    @pointwise.fused
    def scaled_sum(x, y, a: float):
        return (x.float() * a + y.float()).to(x.dtype)

    return scaled_sum


def test_a_compiler_failure_falls_back_to_the_same_arithmetic(monkeypatch):
    def broken(fn, **kwargs):
        def fail(*args):
            raise RuntimeError("no C++ compiler here")
        return fail

    monkeypatch.setattr(pointwise.torch, "compile", broken)
    monkeypatch.setitem(pointwise._state, "warned", False)
    f = make()
    x, y = torch.randn(5), torch.randn(5)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler here"):
        out = f(x, y, 2.0)
    torch.testing.assert_close(out, x * 2 + y)
    assert "eager" in pointwise.forms_ran()
    monkeypatch.undo()             # the compiler works again: only the failed kind stays eager
    g = make()
    before = pointwise.compile_seconds()
    torch.testing.assert_close(g(x, y, 2.0), x * 2 + y)
    assert pointwise.compile_seconds() > before


def test_compiling_leaves_the_callers_logging_alone():
    logger = logging.getLogger("torch.utils.cpp_extension")
    level, filters = logger.level, list(logger.filters)
    make()(torch.randn(3), torch.randn(3), 1.0)
    assert logger.level == level and logger.filters == filters


def test_compiled_and_eager_agree_and_compile_time_is_counted(monkeypatch):
    before = pointwise.compile_seconds()
    f = make()
    x, y = torch.randn(64).bfloat16(), torch.randn(64).bfloat16()
    compiled = f(x, y, 0.5)
    monkeypatch.setenv("ALEXNET_EAGER_KERNELS", "1")
    torch.testing.assert_close(compiled, f(x, y, 0.5))
    assert pointwise.compile_seconds() > before


def test_each_kind_of_call_compiles_a_copy_of_its_own(monkeypatch):
    # One compiled function serving many layouts and dtypes recompiles for each; past
    # dynamo's recompile limit a full test run got wrong gradients that way.
    f = make()
    x = torch.randn(2, 8, 3, 3)
    kinds = [x, x.contiguous(memory_format=torch.channels_last), x.double(), x.bfloat16()]
    for t in kinds:
        before = pointwise.compile_seconds()
        torch.testing.assert_close(f(t, t, 3.0), (t.float() * 4).to(t.dtype))
        assert pointwise.compile_seconds() > before                  # a compile of its own
        before = pointwise.compile_seconds()
        wider = torch.cat([t, t])                                      # the same kind
        torch.testing.assert_close(f(wider, wider, 3.0), (wider.float() * 4).to(t.dtype))
        assert pointwise.compile_seconds() == before                  # no new compile
