"""The first layer's kernels (paper Fig. 3) and how colour-specific each tower's are.

Colour specificity of one kernel w [3, h, w]: the fraction of its energy outside its
greyscale part,

    s(w) = || w - g ||^2 / || w ||^2,   g = the channel mean of w, repeated over R, G, B.

A kernel that looks at luminance only (same weights in R, G and B) scores 0; one whose
channels cancel (a pure colour-opponent kernel, e.g. red minus green) scores 1. A kernel
with independent random weights scores 2/3 on average (2 of the 3 colour directions are
chromatic), which is where an untrained network sits. A tower's score is the mean over its
kernels. The paper's observation (tower a colour-agnostic, tower b colour-specific) becomes
score(a) well below score(b).
"""

from __future__ import annotations

import torch
from torch import nn

RANDOM_KERNEL_SCORE = 2 / 3


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The convolution that reads the RGB image (conv1)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            return module
    raise ValueError(f"{type(model).__name__} has no convolution over RGB images")


# The registered networks built as two towers by default (option `towers`, 1 or 2).
TWO_TOWER_MODELS = ("alexnet-paper", "cifar-towers")


def tower_count(model: nn.Module) -> int:
    """2 for a two-tower network (the paper's, or the 11% net cut into its two towers; the
    first half of conv1's kernels is tower a), else 1. A network built with
    `cross_tower=True` still has two towers: its halves are labelled, only connected."""
    if getattr(model, "model_name", None) not in TWO_TOWER_MODELS:
        return 1
    return int(getattr(model, "model_options", {}).get("towers", 2))


def colour_specificity(kernels: torch.Tensor) -> torch.Tensor:
    """Per-kernel colour specificity (module docstring): kernels [K, 3, h, w] -> [K] in [0, 1]."""
    if kernels.ndim != 4 or kernels.shape[1] != 3:
        raise ValueError(f"expected RGB kernels [K, 3, h, w], got {tuple(kernels.shape)}")
    w = kernels.detach().double()
    grey = w.mean(dim=1, keepdim=True)
    total = w.square().sum(dim=(1, 2, 3))
    chromatic = (w - grey).square().sum(dim=(1, 2, 3))
    return (chromatic / total.clamp_min(1e-30)).float()


def filter_report(model: nn.Module) -> dict:
    """conv1's kernels split by tower, with each tower's colour specificity.

    Returns {"layer", "kernel_size", "towers": [{"name", "kernels" [k, 3, h, w] tensor,
    "colour_specificity" (mean), "per_kernel" list}], "random_kernel_score"}.
    """
    conv = first_conv(model)
    weight = conv.weight.detach().float().cpu()
    count = tower_count(model)
    names = ["a", "b"] if count == 2 else ["all"]
    towers = []
    for name, part in zip(names, weight.chunk(count, dim=0), strict=True):
        scores = colour_specificity(part)
        towers.append({"name": name, "kernels": part,
                       "colour_specificity": float(scores.mean()),
                       "per_kernel": [round(float(s), 4) for s in scores]})
    return {"layer": "conv1", "kernel_size": list(weight.shape[-2:]), "towers": towers,
            "random_kernel_score": RANDOM_KERNEL_SCORE}


def kernel_tiles(kernels: torch.Tensor) -> torch.Tensor:
    """Kernels [K, 3, h, w] -> displayable RGB tiles [K, h, w, 3] in [0, 1].

    Each kernel is scaled by its own largest absolute weight around mid-grey, jointly over
    its channels, so a luminance-only kernel stays grey and colours keep their balance.
    """
    peak = kernels.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    return (0.5 + 0.5 * kernels / peak).clamp(0, 1).permute(0, 2, 3, 1)
