"""Engine test fixtures: a tiny real store (a few CIFAR-10 images per class), prepared once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runs import build_tiny_store  # noqa: E402


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    return build_tiny_store(tmp_path_factory.mktemp("tiny"))
