"""Helpers for tests that train: tiny real stores, running `python -m alexnet` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from helpers.paths import CIFAR10_TRAIN


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
    return {**os.environ, "OMP_NUM_THREADS": "1", "ALEXNET_CACHE": str(tmp / "cache"),
            "PYTHONUNBUFFERED": "1", **extra}


def run_alexnet(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alexnet", *args], env=env, timeout=timeout,
                          capture_output=True, text=True)


# `python -c` this, then the `alexnet` arguments: the command line with every training step
# followed by a sleep of STEP_SLEEP seconds (the engine's STEP_HOOKS seam), so a test can
# interrupt a run mid-epoch.
SLOWED = """
import os, sys, time
from alexnet.engine import train
seconds = float(os.environ["STEP_SLEEP"])
train.STEP_HOOKS.append(lambda run: time.sleep(seconds))
from alexnet.cli import main
sys.exit(main(sys.argv[1:]))
"""


def slowed_alexnet(args: list[str], env: dict, step_sleep: float, **popen) -> subprocess.Popen:
    """`python -m alexnet ARGS` started in the background, each training step slowed by
    `step_sleep` seconds."""
    return subprocess.Popen([sys.executable, "-c", SLOWED, *args],
                            env={**env, "STEP_SLEEP": str(step_sleep)}, **popen)
