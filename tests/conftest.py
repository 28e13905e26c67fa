"""Shared test fixtures: paths to the real data in ../shared/data, skipped when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CIFAR10_TRAIN = SHARED_DATA / "cifar10" / "train"
IMAGENET_SAMPLES = SHARED_DATA / "imagenet-samples"


@pytest.fixture
def cifar10_train() -> Path:
    if not CIFAR10_TRAIN.is_dir():
        pytest.skip(f"real CIFAR-10 images not found at {CIFAR10_TRAIN}")
    return CIFAR10_TRAIN


@pytest.fixture
def imagenet_samples() -> Path:
    if not IMAGENET_SAMPLES.is_dir():
        pytest.skip(f"real ImageNet sample images not found at {IMAGENET_SAMPLES}")
    return IMAGENET_SAMPLES


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` run only where CUDA is available (the GPU machine)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
