"""Helpers for tests that train: tiny real stores, running `python -m alexnet` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers.images import image_folder


def build_tiny_store(root: Path) -> Path:
    """A prepared 32x32 store under `root`: 4 classes x 40 images."""
    from alexnet.data import prepare_store

    image_folder(root / "images", 40, 4, real=True)
    prepare_store(root / "images", root / "store", size=32, workers=1, progress=False)
    return root / "store"


def alexnet_env(tmp: Path, **extra: str) -> dict:
    """The environment for a subprocess run: one thread, a private cache."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "ALEXNET_CACHE": str(tmp / "cache"),
            "PYTHONUNBUFFERED": "1", **extra}


def run_alexnet(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alexnet", *args], env=env, timeout=timeout,
                          capture_output=True, text=True)


def torchrun(ranks: int, args: list[str], env: dict,
             timeout: float = 300) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=RANKS ARGS` (a script and its arguments, or
    `-m alexnet ...`), its output captured."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={ranks}", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


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
