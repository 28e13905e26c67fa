"""Where the real data for tests lives: ../shared/data beside the repository."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
CIFAR10_TRAIN = SHARED_DATA / "cifar10" / "train"
CIFAR10_ORIGINALS = SHARED_DATA / "cifar-10-batches-py"
IMAGENET_SAMPLES = SHARED_DATA / "imagenet-samples"
