"""A run killed (SIGKILL) or stopped (SIGTERM) mid-epoch and resumed ends bit-identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alexnet.engine.checkpoint import load_training_state
from helpers.runs import alexnet_env, run_alexnet, slowed_alexnet

# 140 training images / batch 16 = 8 steps per epoch, 2 epochs; save after every step.
SETTINGS = ["epochs=2", "val_per_class=5", "batch_size=16", "eval_batch_size=50",
            "deterministic=true", "checkpoint_minutes=0", "eval_views=ten"]


def train_args(store: Path, out: Path) -> list[str]:
    return ["train", "--data", str(store), "--out", str(out), *SETTINGS]


@pytest.fixture(scope="module")
def reference(tiny_store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    done = run_alexnet(train_args(tiny_store, out), alexnet_env(out.parent))
    assert done.returncode == 0, done.stderr
    return out


def interrupt(store: Path, out: Path, sig: int, at_step: int) -> int:
    """Start a slowed-down run, send `sig` once its saved state reached `at_step`."""
    proc = slowed_alexnet(train_args(store, out), alexnet_env(out.parent), step_sleep=0.25,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            state = out / "last.state.pt"
            if state.is_file() and load_training_state(state)["global_step"] >= at_step:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the run never reached the step to interrupt at")
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode


def assert_same_run(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "last.safetensors"), load_file(b / "last.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key

    def without_timings(run: Path) -> list[list[str]]:
        return [row.split(",")[:6] for row in (run / "metrics.csv").read_text().splitlines()]

    assert without_timings(a) == without_timings(b)
    def without_times(run: Path) -> dict:
        final = json.loads((run / "final.json").read_text())
        return {k: v for k, v in final.items()
                if k not in ("wall_seconds", "fused_kernels_compile_seconds", "weights")}

    assert without_times(a) == without_times(b)


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tiny_store, reference, tmp_path):
    out = tmp_path / "run"
    code = interrupt(tiny_store, out, signal.SIGKILL, at_step=11)   # epoch 2, step 3
    assert code == -signal.SIGKILL
    state = load_training_state(out / "last.state.pt")
    assert state["epoch"] == 1 and 0 < state["step"] < 8
    done = run_alexnet(train_args(tiny_store, out), alexnet_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    assert_same_run(reference, out)


def test_sigterm_finishes_the_step_saves_and_resumes_identically(tiny_store, reference,
                                                                 tmp_path):
    out = tmp_path / "run"
    code = interrupt(tiny_store, out, signal.SIGTERM, at_step=4)
    assert code == 128 + signal.SIGTERM
    state = load_training_state(out / "last.state.pt")
    assert state["epoch"] == 0 and state["step"] >= 4
    done = run_alexnet(train_args(tiny_store, out) + ["--resume"], alexnet_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert_same_run(reference, out)


def test_a_resume_reads_its_settings_from_config_json_not_the_state(tmp_path, monkeypatch):
    """The state (0.5 GB for alexnet-paper) is loaded once, by the training itself."""
    from alexnet.engine import checkpoint
    from alexnet.engine.resume import run_config, saved_config
    from alexnet.recipes import resolve_config

    out = tmp_path / "run"
    out.mkdir()
    assert saved_config(out) is None                      # no state: a new run
    (out / "last.state.pt").write_bytes(b"a state too large to read twice")
    (out / "config.json").write_text(json.dumps(resolve_config("cifar10", ["lr=0.02"])
                                                .to_dict()))

    def refuse(*args, **kwargs):
        raise AssertionError("the training state was read to resolve the settings")

    monkeypatch.setattr(checkpoint, "load_latest_state", refuse)
    config = run_config(out, None, ["epochs=7"])
    assert (config.lr, config.epochs) == (0.02, 7)
