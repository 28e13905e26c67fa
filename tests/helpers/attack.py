"""Helpers for the reliability tests (issue 14's attack list): small files crafted in a temp
folder, a checkpoint whose metadata can be edited, folders made unreadable even for root."""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from helpers.images import class_folders


def image_folder(root: Path, per_class: int = 3, side: int = 20) -> Path:
    """root/ant, bee, cow, each with `per_class` small PNGs."""
    return class_folders(root, per_class, side=(side, side), step=(1, 1))


def one_error_line(capsys, after_progress: bool = False) -> str:
    """The single `alexnet: error: ...` line a refused command prints, and nothing else
    (after_progress: the last line, after the progress lines of work already done)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1] if after_progress else err
    assert last.startswith("alexnet: error: ") and "\n" not in last, err
    return last


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


def unreadable(path: Path, monkeypatch, request) -> None:
    """Take read permission away from `path`. Root ignores file modes, so for root (as in
    containers) os.scandir, os.listdir and open refuse it as the kernel would."""
    path.chmod(0)
    request.addfinalizer(lambda: path.chmod(0o755))
    if os.geteuid() != 0:
        return
    real_scandir, real_listdir, real_open = os.scandir, os.listdir, builtins.open

    def denied(p) -> bool:
        return isinstance(p, (str, os.PathLike)) and Path(p).absolute() == path.absolute()

    def scandir(p="."):
        if denied(p):
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real_scandir(p)

    def listdir(p="."):
        if denied(p):
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real_listdir(p)

    def open_(file, *args, **kwargs):
        if denied(file):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "listdir", listdir)
    monkeypatch.setattr(builtins, "open", open_)
