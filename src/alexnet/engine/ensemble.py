"""Several trained networks averaged, as the paper's "5 CNNs" rows: the softmax outputs of
the members are averaged (after each member averaged its own views)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from alexnet.console import progress
from alexnet.engine.evaluate import (
    check_views,
    error_fraction,
    iterate_images,
    view_probabilities,
    views_name,
)
from alexnet.engine.metrics import topk_correct


def ensemble_evaluate(models: Sequence[torch.nn.Module], preprocessings: Sequence,
                      images, labels, views: str = "center", *, indices=None,
                      batch_size: int = 256, amp_dtype: torch.dtype | None = None,
                      show_progress: bool = False) -> dict:
    """Top-1/top-5 error of each member and of their averaged softmax, as fractions.

    models and preprocessings: one per member (members may differ in crop or normalisation
    but read the same uint8 images [N, H, W, 3]). Returns {"members": [{top1_error,
    top5_error, images}, ...], "ensemble": {...}, "views": views}.
    """
    check_views(views)
    if not models:
        raise ValueError("an ensemble needs at least one model")
    counts = torch.zeros(len(models) + 1, 2, dtype=torch.long)   # members..., ensemble
    seen = 0
    total = len(labels) if indices is None else len(indices)
    with progress(total, f"ensemble of {len(models)} ({views_name(views)})",
                  enabled=show_progress) as bar:
        for x, y in iterate_images(images, labels, indices, batch_size):
            mean = None
            for i, (model, pre) in enumerate(zip(models, preprocessings, strict=True)):
                probs = view_probabilities(model, x, pre, views, batch_size,
                                           amp_dtype).float().cpu()
                counts[i] += topk_correct(probs, y, (1, 5))
                mean = probs if mean is None else mean + probs
            counts[-1] += topk_correct(mean / len(models), y, (1, 5))
            seen += y.numel()
            bar.advance(y.numel())

    def errors(row: torch.Tensor) -> dict:
        return {"top1_error": error_fraction(seen - int(row[0]), seen),
                "top5_error": error_fraction(seen - int(row[1]), seen), "images": seen}

    return {"members": [errors(counts[i]) for i in range(len(models))],
            "ensemble": errors(counts[-1]), "views": views}
