"""Helpers for tests that train: tiny real stores, running `python -m alexnet` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
CIFAR10_TRAIN = REPO.parent / "shared" / "data" / "cifar10" / "train"


def make_image_folder(root: Path, classes: int, per_class: int, seed: int = 0) -> Path:
    """Real CIFAR-10 images (symlinks) when present, else generated 32x32 ones."""
    rng = np.random.default_rng(seed)
    real = sorted(p for p in CIFAR10_TRAIN.iterdir() if p.is_dir())[:classes] \
        if CIFAR10_TRAIN.is_dir() else []
    for c in range(classes):
        folder = root / (real[c].name if real else f"class{c}")
        folder.mkdir(parents=True, exist_ok=True)
        files = sorted(real[c].iterdir())[:per_class] if real else []
        for i in range(per_class):
            if files:
                (folder / files[i].name).symlink_to(files[i])
            else:
                base = rng.integers(0, 256, 3) * (c + 1) % 256
                pixels = np.clip(base + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


def build_tiny_store(root: Path) -> Path:
    """A prepared 32x32 store under `root`: 4 classes x 40 images."""
    from alexnet.data import prepare_store

    make_image_folder(root / "images", classes=4, per_class=40)
    prepare_store(root / "images", root / "store", size=32, workers=1, progress=False)
    return root / "store"


def alexnet_env(tmp: Path, **extra: str) -> dict:
    """The environment for a subprocess run: one thread, a private cache."""
    env = {k: v for k, v in os.environ.items() if k != "ALEXNET_DEBUG_STEP_SLEEP"}
    return {**env, "OMP_NUM_THREADS": "1", "ALEXNET_CACHE": str(tmp / "cache"),
            "PYTHONUNBUFFERED": "1", **extra}


def run_alexnet(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alexnet", *args], env=env, timeout=timeout,
                          capture_output=True, text=True)
