"""Evaluation: exact top-k on known scores, and the 10-view softmax average."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alexnet.data.normalization import Preprocessing
from alexnet.data.views import ten_views
from alexnet.engine.ensemble import ensemble_evaluate
from alexnet.engine.evaluate import evaluate, view_probabilities
from alexnet.engine.metrics import topk_correct


class LookupModel(nn.Module):
    """Logits read from a table by the image's id, stored as its constant pixel value."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = table
        self.anchor = nn.Parameter(torch.zeros(1))   # gives the model a device

    def forward(self, x):
        ids = x[:, 0, 0, 0].round().long()
        return self.table[ids]


def topk_error(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    return 1 - topk_correct(scores, labels, (k,)).item() / len(labels)


def test_topk_correct_exact():
    scores = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    labels = torch.tensor([2, 0, 0])
    assert topk_correct(scores, labels, (1, 2, 3)).tolist() == [1, 2, 3]
    assert topk_correct(scores, labels, (1, 5)).tolist() == [1, 3]  # k > classes: all correct


def test_evaluate_gives_exact_top1_top5_on_known_logits():
    gen = torch.Generator().manual_seed(0)
    n, classes = 37, 12
    table = torch.randn(n, classes, generator=gen)
    labels = torch.randint(0, classes, (n,), generator=gen)
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 8, 8, 3).contiguous()
    pre = Preprocessing(size=8, crop=6)          # mean 0, std 1: the view keeps the id
    result = evaluate(LookupModel(table), images.numpy(), labels.numpy(), pre, "ten",
                      batch_size=10)
    rank = (table > table.gather(1, labels[:, None])).sum(1)   # how many beat the label
    assert result["images"] == n
    assert result["top1_error"] == pytest.approx((rank >= 1).sum().item() / n, abs=1e-12)
    assert result["top5_error"] == pytest.approx((rank >= 5).sum().item() / n, abs=1e-12)
    some = evaluate(LookupModel(table), images.numpy(), labels.numpy(), pre, indices=[3, 4, 5])
    assert some["images"] == 3


def test_ten_views_average_softmax_not_logits():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 5))
    with torch.no_grad():
        model[1].weight.mul_(20)                 # confident, view-dependent outputs
    images = torch.randint(0, 256, (4, 8, 8, 3), dtype=torch.uint8)
    pre = Preprocessing(size=8, crop=6, channel_mean=(120.0,) * 3, channel_std=(60.0,) * 3)
    views = ten_views(images, pre)                                   # [10, 4, 3, 6, 6]
    with torch.no_grad():
        logits = model(views.reshape(40, 3, 6, 6)).view(10, 4, 5)
    expected = logits.softmax(-1).mean(0)
    got = view_probabilities(model, images, pre, "ten")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert (got - logits.mean(0).softmax(-1)).abs().max() > 1e-3
    torch.testing.assert_close(got.sum(1), torch.ones(4))
    center = view_probabilities(model, images, pre, "center")
    torch.testing.assert_close(center, logits[4].softmax(-1), rtol=1e-5, atol=1e-6)


def test_ensemble_averages_member_softmax():
    gen = torch.Generator().manual_seed(1)
    n, classes = 20, 6
    tables = [torch.randn(n, classes, generator=gen) * 3 for _ in range(3)]
    labels = torch.randint(0, classes, (n,), generator=gen)
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 4, 4, 3).contiguous()
    pre = Preprocessing(size=4, crop=4)
    result = ensemble_evaluate([LookupModel(t) for t in tables], [pre] * 3, images.numpy(),
                               labels.numpy(), batch_size=7)
    mean = sum(t.softmax(-1) for t in tables) / 3
    assert result["ensemble"]["top1_error"] == pytest.approx(topk_error(mean, labels, 1))
    for table, member in zip(tables, result["members"], strict=True):
        assert member["top5_error"] == pytest.approx(topk_error(table, labels, 5))


def test_evaluate_on_a_prepared_store_gives_exact_errors(tmp_path):
    """Images whose constant colour is their id, in a real store; logits looked up by id."""
    import numpy as np
    from PIL import Image

    from alexnet.data import open_store, prepare_store

    n, classes = 30, 7
    gen = torch.Generator().manual_seed(3)
    table = torch.randn(n, classes, generator=gen)
    for i in range(n):
        folder = tmp_path / "images" / f"c{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(folder / f"{i:03d}.png")
    prepare_store(tmp_path / "images", tmp_path / "store", size=8, workers=1, progress=False)
    store = open_store(tmp_path / "store")
    ids = torch.from_numpy(store.images[:, 0, 0, 0].astype(np.int64))
    labels = torch.from_numpy(store.labels)
    scores = table[ids]
    result = evaluate(LookupModel(table), store, preprocessing=Preprocessing(size=8, crop=6),
                      views="ten", batch_size=40)
    rank = (scores > scores.gather(1, labels[:, None])).sum(1)
    assert result["images"] == n
    assert result["top1_error"] == pytest.approx((rank >= 1).sum().item() / n, abs=1e-12)
    assert result["top5_error"] == pytest.approx((rank >= 5).sum().item() / n, abs=1e-12)
    assert 0 < result["top5_error"] < result["top1_error"] < 1
