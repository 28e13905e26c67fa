"""StoreLoader: seeded per-epoch order, shards, exact resume, drop_last, prefetch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alexnet.data.loader import StoreLoader


def _data(n=103, side=4):
    images = np.zeros((n, side, side, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256
    images[:, 0, 0, 1] = np.arange(n) // 256
    return images, np.arange(n, dtype=np.int64) * 10


def _labels(loader, epoch=0, start=0):
    return [lab.clone() for _, lab in loader.iterate(epoch, start)]


def test_batches_pair_images_with_their_labels_and_cover_the_epoch():
    images, labels = _data()
    loader = StoreLoader(images, labels, 10, seed=3)
    seen = []
    for imgs, labs in loader.iterate(0):
        assert imgs.dtype == torch.uint8 and labs.dtype == torch.int64
        idx = imgs[:, 0, 0, 0].long() + 256 * imgs[:, 0, 0, 1].long()
        assert torch.equal(idx * 10, labs)
        seen += idx.tolist()
    assert sorted(seen) == list(range(103)) and len(loader) == 11


def test_permutation_depends_only_on_seed_and_epoch():
    images, labels = _data()
    a, b = StoreLoader(images, labels, 16, seed=7), StoreLoader(images, labels, 16, seed=7)
    assert all(torch.equal(x, y) for x, y in zip(_labels(a, 2), _labels(b, 2), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(_labels(a, 2), _labels(a, 3), strict=True))
    c = StoreLoader(images, labels, 16, seed=8)
    assert not all(torch.equal(x, y) for x, y in zip(_labels(a, 2), _labels(c, 2), strict=True))


def test_iterate_from_start_batch_is_the_tail_of_the_epoch():
    images, labels = _data()
    loader = StoreLoader(images, labels, 8, seed=1)
    full = _labels(loader, 4)
    tail = _labels(loader, 4, start=5)
    assert len(tail) == len(full) - 5
    assert all(torch.equal(x, y) for x, y in zip(full[5:], tail, strict=True))


@pytest.mark.parametrize("drop_last", [False, True])
def test_shards_are_disjoint_and_cover(drop_last):
    images, labels = _data()
    shards = [torch.cat(_labels(StoreLoader(images, labels, 8, seed=2, rank=r, world_size=3,
                                            drop_last=drop_last)))
              for r in range(3)]
    sets = [set(s.tolist()) for s in shards]
    assert all(len(s) == len(t) for s, t in zip(sets, shards, strict=True))
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    union = sets[0] | sets[1] | sets[2]
    if drop_last:
        assert len({len(s) for s in shards}) == 1 and len(union) == 3 * (103 // 3 // 8 * 8)
    else:
        assert union == set(range(0, 1030, 10))


def test_drop_last_drops_the_partial_batch():
    images, labels = _data()
    keep = StoreLoader(images, labels, 10, shuffle=False)
    drop = StoreLoader(images, labels, 10, shuffle=False, drop_last=True)
    assert len(keep) == 11 and len(drop) == 10
    assert [len(b) for b in _labels(keep)][-1] == 3
    assert all(len(b) == 10 for b in _labels(drop))


def test_indices_subset_unshuffled_and_synchronous_paths_agree():
    images, labels = _data()
    subset = np.arange(0, 103, 2)
    sync = StoreLoader(images, labels, 7, indices=subset, prefetch=0, seed=5)
    threaded = StoreLoader(images, labels, 7, indices=subset, prefetch=3, seed=5)
    on_tensor = StoreLoader(torch.from_numpy(images), labels, 7, indices=subset, seed=5)
    for a, b, c in zip(sync.iterate(0), threaded.iterate(0), on_tensor.iterate(0), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(a[1], c[1])
    ordered = torch.cat(_labels(StoreLoader(images, labels, 7, indices=subset, shuffle=False)))
    assert torch.equal(ordered, torch.from_numpy(subset * 10))


def test_breaking_out_early_stops_the_reader():
    images, labels = _data()
    loader = StoreLoader(images, labels, 4)
    for i, _ in enumerate(loader.iterate(0)):
        if i == 1:
            break
    assert len(list(loader.iterate(0))) == len(loader)


@pytest.mark.gpu
def test_cuda_batches_arrive_on_the_device():
    images, labels = _data()
    loader = StoreLoader(images, labels, 16, device="cuda")
    got = torch.cat([lab.cpu() for im, lab in loader.iterate(0) if im.is_cuda])
    assert sorted(got.tolist()) == list(range(0, 1030, 10))
