"""The two copies of CIFAR-10's training set in ../shared/data hold the same images in the
same order within each class, so a seed holds out the same pictures in both: what makes the
original-pixels-versus-JPEG comparison (docs/results/jpeg-cost) a comparison of copies of the
same held-out images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from alexnet.data.cifar import CIFAR_TRAIN, cifar_contents, cifar_row, read_cifar_batch
from alexnet.engine.inputs import split_validation
from helpers.paths import CIFAR10_ORIGINALS, CIFAR10_TRAIN

pytestmark = pytest.mark.skipif(not (CIFAR10_ORIGINALS.is_dir() and CIFAR10_TRAIN.is_dir()),
                                reason="the two CIFAR-10 copies of ../shared/data are absent")


def test_a_seed_holds_out_the_same_pictures_in_both_copies():
    refs, labels, classes = cifar_contents(CIFAR10_ORIGINALS, CIFAR_TRAIN)
    folders = sorted(p for p in CIFAR10_TRAIN.iterdir() if p.is_dir())
    assert [f.name for f in folders] == classes
    files = [sorted(f.iterdir()) for f in folders]
    jpeg_labels = np.concatenate([np.full(len(f), c) for c, f in enumerate(files)])
    labels = np.asarray(labels)
    assert np.array_equal(np.bincount(labels), np.bincount(jpeg_labels))
    batches = {name: read_cifar_batch(CIFAR10_ORIGINALS / name)[b"data"] for name in CIFAR_TRAIN}
    rank = np.empty(len(labels), dtype=np.int64)      # each image's place within its class
    for c in range(len(classes)):
        rank[labels == c] = np.arange((labels == c).sum())
    for seed in (0, 1):
        _, held = split_validation(labels, 500, seed)
        _, held_jpeg = split_validation(jpeg_labels, 500, seed)
        # the jpeg store is class by class, so its index is the class's first plus the rank
        first = np.concatenate([[0], np.cumsum(np.bincount(jpeg_labels))[:-1]])
        assert sorted(first[labels[held]] + rank[held]) == sorted(held_jpeg)
        # and the pictures match: a few held-out originals against their JPEG copies
        picks = held[:: len(held) // 12][:12]
        close, apart = [], []
        for n, i in enumerate(picks):
            batch, row = refs[i].split("/")
            original = cifar_row(batches[batch], int(row)).astype(float)
            copy = np.asarray(Image.open(files[labels[i]][rank[i]]).convert("RGB"), float)
            other = picks[(n + 1) % len(picks)]
            other_copy = np.asarray(Image.open(files[labels[other]][rank[other]]).convert("RGB"),
                                    float)
            close.append(np.abs(original - copy).mean())
            apart.append(np.abs(original - other_copy).mean())
        # JPEG quality 75 moves a pixel by ~6 grey levels on average; other pictures by ~70
        assert max(close) < 15 and min(apart) > 25, (close, apart)
