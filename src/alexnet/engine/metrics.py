"""Top-k error, the paper's measure: the true label is not among the k highest scores."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def topk_correct(scores: torch.Tensor, labels: torch.Tensor,
                 ks: Sequence[int] = (1, 5)) -> torch.Tensor:
    """Counts of images whose label is among the k best scores, one per k.

    scores: [B, C] logits or probabilities (any monotone score); labels: [B] int64.
    Returns an int64 tensor [len(ks)] on scores' device (sums, so batches can be added and
    ranks all-reduced). k larger than C counts every image as correct.
    """
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f"expected scores [B, C] and labels [B], got {tuple(scores.shape)} "
                         f"and {tuple(labels.shape)}")
    kmax = min(max(ks), scores.shape[1])
    top = scores.topk(kmax, dim=1).indices                     # [B, kmax]
    hit = top.eq(labels.to(top.device).view(-1, 1))            # [B, kmax]
    # A label appears at most once in the top-k, so a cumulative sum marks "within the first k".
    within = hit.cumsum(dim=1)                                 # [B, kmax]
    return torch.stack([within[:, min(k, kmax) - 1].sum() for k in ks]).long()

