"""The training step learns: a small network overfits a small batch of real images."""

from __future__ import annotations

import torch

from alexnet.data import open_store
from alexnet.data.views import center_view
from alexnet.engine.optim import PaperSGD, parameter_groups
from alexnet.engine.train import train_step
from alexnet.models import build_model


def test_a_small_network_overfits_a_small_real_batch(tiny_store):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # the CI machine's 2 cores are shared; 1 thread is steadier
    try:
        _overfit(tiny_store)
    finally:
        torch.set_num_threads(threads)


def _overfit(tiny_store):
    torch.manual_seed(0)
    store = open_store(tiny_store)
    pick = torch.arange(0, len(store), len(store) // 32)[:32]       # all four classes
    images = torch.from_numpy(store.images[pick.numpy()])
    labels = torch.from_numpy(store.labels[pick.numpy()])
    pre = store.preprocessing(24)
    x = center_view(images, pre) / 64.0                              # [32, 3, 24, 24]
    model = build_model("cifar-conv-local", num_classes=len(store.classes))
    optimizer = PaperSGD(parameter_groups(model, 0.02, 0.0, bias_lr_mult=2.0), lr=0.02,
                         momentum=0.9, weight_decay=0.0)
    first = None
    for _ in range(60):
        loss, wrong = train_step(model, optimizer, x, labels, None)
        first = loss.item() if first is None else first
    model.eval()
    with torch.no_grad():
        final = torch.nn.functional.cross_entropy(model(x), labels).item()
        accuracy = (model(x).argmax(1) == labels).float().mean().item()
    assert first > 1.2                 # ln(4) = 1.39 at the start
    assert final < 0.05 and accuracy == 1.0


def test_train_step_smooths_the_labels_it_is_given():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    x, labels = torch.randn(8, 5), torch.randint(0, 3, (8,))
    expected = torch.nn.functional.cross_entropy(model(x), labels, label_smoothing=0.1).item()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss, _ = train_step(model, optimizer, x, labels, None, label_smoothing=0.1)
    assert abs(loss.item() - expected) < 1e-6
    assert abs(loss.item() - train_step(model, optimizer, x, labels, None)[0].item()) > 1e-3
