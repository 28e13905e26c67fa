"""Shared test fixtures: the real data in ../shared/data (skipped when absent), a tiny
prepared store, and the paper's network built once for tests that only read it; and a guard
that fails any test leaving the process changed for the tests after it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from helpers.paths import CIFAR10_TRAIN, IMAGENET_SAMPLES


@pytest.fixture(scope="session")
def cifar10_train() -> Path:
    if not CIFAR10_TRAIN.is_dir():
        pytest.skip(f"real CIFAR-10 images not found at {CIFAR10_TRAIN}")
    return CIFAR10_TRAIN


@pytest.fixture(scope="session")
def imagenet_samples() -> Path:
    if not IMAGENET_SAMPLES.is_dir():
        pytest.skip(f"real ImageNet sample images not found at {IMAGENET_SAMPLES}")
    return IMAGENET_SAMPLES


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """A prepared 32x32 store of 4 classes x 40 images (real CIFAR-10 ones when present);
    tests read it, none changes it."""
    from helpers.runs import build_tiny_store

    return build_tiny_store(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def paper_model():
    """`alexnet-paper` with its defaults, for tests that only read it (61 M parameters:
    built once)."""
    from alexnet.models import build_model

    return build_model("alexnet-paper").eval()


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` run only where CUDA is available (the GPU machine)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# Set by pytest itself, and once per process by torch's compiler: not a test's doing.
IGNORED_VARIABLES = ("PYTEST_", "_TORCHINDUCTOR", "TORCHINDUCTOR_")


def _process_state() -> dict:
    """What one test could change for every later one in this process."""
    import torch

    environment = {k: v for k, v in os.environ.items() if not k.startswith(IGNORED_VARIABLES)}
    return {"environment": environment, "working folder": os.getcwd(),
            "torch threads": torch.get_num_threads(),
            "default dtype": torch.get_default_dtype(),
            "grad mode": torch.is_grad_enabled(),
            "deterministic algorithms": torch.are_deterministic_algorithms_enabled()}


@pytest.fixture(autouse=True)
def leaves_the_process_as_it_found_it():
    """Tests must not depend on their order: each one leaves environment variables, the
    working folder and torch's global settings as it found them (monkeypatch restores before
    this runs). A leak is undone, then reported as the test's failure."""
    import torch

    before = _process_state()
    yield
    after = _process_state()
    changed = [name for name in before if before[name] != after[name]]
    if not changed:
        return
    for key in [k for k in os.environ if not k.startswith(IGNORED_VARIABLES)]:
        del os.environ[key]
    os.environ.update(before["environment"])
    os.chdir(before["working folder"])
    torch.set_num_threads(before["torch threads"])
    torch.set_default_dtype(before["default dtype"])
    torch.set_grad_enabled(before["grad mode"])
    torch.use_deterministic_algorithms(before["deterministic algorithms"])
    if "environment" in changed:
        keys = {k for k in {*before["environment"], *after["environment"]}
                if before["environment"].get(k) != after["environment"].get(k)}
        changed[changed.index("environment")] = f"environment ({', '.join(sorted(keys))})"
    pytest.fail(f"the test changed the process for the tests after it: {', '.join(changed)}")


# When a run's log level is DEBUG (`pytest -o log_level=DEBUG`, or anything that lowers the
# root logger), pytest captures every record and prints them with a failure: matplotlib's
# font manager logs each font it scores (hundreds of lines per figure) and Pillow's PNG plugin
# each chunk it reads, thousands of lines that bury the assertion. Their warnings still show.
for _noisy in ("matplotlib", "PIL"):
    logging.getLogger(_noisy).setLevel(logging.INFO)
