"""What the tests of the split towers share (tests/models/test_towers.py in one process,
split_check.py under torchrun): the paper's optimiser set up alike for the single-device
network and its split, and the comparison of their tensors."""

from __future__ import annotations

import torch

from alexnet.engine.optim import build_optimizer, parameter_groups


def paper_optimizer(named, layer_decay: dict[str, float] | None = None):
    """The paper's SGD (lr 0.01, momentum 0.9, weight decay 5e-4, biases 2x lr and no decay)
    over `named`'s parameters (a network, or `SingleDeviceNames` of a split one)."""
    groups = parameter_groups(named, 0.01, 5e-4, bias_lr_mult=2.0, bias_weight_decay=0.0,
                              layer_decay=layer_decay)
    return build_optimizer("paper", groups, 0.01, 0.9, 5e-4)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest difference, relative to b's largest value."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()
