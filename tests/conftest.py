"""Shared test fixtures: the real data in ../shared/data (skipped when absent), a tiny
prepared store, and the paper's network built once for tests that only read it."""

from __future__ import annotations

import logging
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


# When a run's log level is DEBUG (`pytest -o log_level=DEBUG`, or anything that lowers the
# root logger), pytest captures every record and prints them with a failure: matplotlib's
# font manager logs each font it scores (hundreds of lines per figure) and Pillow's PNG plugin
# each chunk it reads, thousands of lines that bury the assertion. Their warnings still show.
for _noisy in ("matplotlib", "PIL"):
    logging.getLogger(_noisy).setLevel(logging.INFO)
