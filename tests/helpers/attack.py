"""Helpers for the reliability tests (issue 14's attack list): small files crafted in a temp
folder, a checkpoint whose metadata can be edited, folders made unreadable even for root
(commands run with root's power to read any file taken away)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file


def checkpoint(path: Path, tensors: dict | None = None, **metadata: str) -> Path:
    """A valid cifar-4layer checkpoint (3 classes, 32x32), then its metadata entries replaced
    by `metadata` (raw strings, as stored) and tensors by `tensors`."""
    from alexnet.data.normalization import Preprocessing
    from alexnet.engine.checkpoint import save_weights
    from alexnet.models import build_model

    torch.manual_seed(0)
    save_weights(path, build_model("cifar-4layer", num_classes=3), classes=["a", "b", "c"],
                 preprocessing=Preprocessing(32, 32, channel_mean=(120.0,) * 3,
                                             channel_std=(60.0,) * 3))
    with safe_open(str(path), framework="pt") as f:
        meta = {**f.metadata(), **metadata}
        weights = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file({**weights, **(tensors or {})}, str(path), metadata=meta)
    return path


def unprivileged() -> list[str]:
    """The command prefix that runs a program as a user file modes apply to, so that a
    folder made unreadable (chmod 000) is refused by the kernel itself, not by a patched
    function. Empty when the tests do not run as root. As root, `setpriv` drops the
    capabilities that let root read any file (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): the
    process keeps uid 0, so it can still run an interpreter installed under /root (mode
    0700), which user `nobody` could not. Skips the test when that is impossible."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without `setpriv`: no way to run a command that "
                    "unreadable folders are refused to")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30)
    except OSError as err:
        pytest.skip(f"`setpriv` cannot run here ({err})")
    if probe.returncode != 0:
        pytest.skip(f"`setpriv` cannot drop root's file capabilities here "
                    f"({probe.stderr.decode(errors='replace').strip()})")
    return prefix


def run_unprivileged(args: list[str], env: dict, timeout: float = 180
                     ) -> subprocess.CompletedProcess:
    """`python -m alexnet ARGS` run by `unprivileged()`."""
    return subprocess.run([*unprivileged(), sys.executable, "-m", "alexnet", *args], env=env,
                          timeout=timeout, capture_output=True, text=True)


def unreadable(path: Path, request) -> None:
    """Take every permission away from `path` (for the test; given back after it). Only a
    process started by `run_unprivileged` is refused it when the tests run as root."""
    path.chmod(0)
    request.addfinalizer(lambda: path.chmod(0o755))
