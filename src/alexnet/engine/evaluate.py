"""Evaluation the paper's way: softmax averaged over test views, top-1 and top-5 error.

Images stay uint8 [N, H, W, 3] (a store's memmap or a tensor) until a batch is on the
model's device; the views (centre crop, or the paper's 10 patches) are cut there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from alexnet.choices import VIEWS
from alexnet.console import progress
from alexnet.data.views import center_view, ten_views
from alexnet.engine.metrics import topk_correct
from alexnet.errors import UserError, one_of


def check_views(views: str) -> str:
    if views not in VIEWS:
        raise one_of("views", views, VIEWS)
    return views


def views_name(views: str) -> str:
    """The views in a message: "centre view" or "ten views" (the option values stay
    `center` and `ten`, as in torchvision's CenterCrop and TenCrop)."""
    return {"center": "centre view", "ten": "ten views"}.get(views, views)


def error_text(result: dict, classes: int, word: str = "") -> str:
    """"top-1 12.34%, top-5 1.23%" for a result's error fractions ("top-1 error ..." with
    `word`="error"); top-5 only with more than 5 classes, where it can be other than 0."""
    label = f" {word}" if word else ""
    text = f"top-1{label} {100 * result['top1_error']:.2f}%"
    if classes > 5:
        text += f", top-5{label} {100 * result['top5_error']:.2f}%"
    return text


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _channels_last(model: nn.Module) -> bool:
    for p in model.parameters():
        if p.ndim == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


def view_probabilities(model: nn.Module, images_u8_nhwc, preprocessing, views: str = "center",
                       batch_size: int = 256, amp_dtype: torch.dtype | None = None
                       ) -> torch.Tensor:
    """Class probabilities of uint8 images [B, H, W, 3], softmax averaged over the views.

    views: "center" (one central crop) or "ten" (4 corners + centre, and their reflections;
    the paper's test). Averaging happens after the softmax, as in the paper, not on logits.
    Returns float32 [B, classes] on the model's device. Runs in eval mode under no_grad and
    restores the model's previous mode.
    """
    check_views(views)
    device = model_device(model)
    images = torch.as_tensor(np.asarray(images_u8_nhwc)) \
        if not isinstance(images_u8_nhwc, torch.Tensor) else images_u8_nhwc
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images [B, H, W, 3], got {images.dtype} "
                         f"{tuple(images.shape)}")
    if images.shape[1] != preprocessing.size:
        raise UserError(f"images are {images.shape[1]}x{images.shape[2]} but the model's "
                        f"preprocessing expects {preprocessing.size}x{preprocessing.size} "
                        f"stored images; prepare the data at size {preprocessing.size}")
    channels_last = _channels_last(model)
    # batch_size counts network inputs: ten views of an image are ten of them.
    step = max(1, batch_size // (10 if views == "ten" else 1))
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, images.shape[0], step):
                chunk = images[start:start + step].to(device, non_blocking=True)
                x = center_view(chunk, preprocessing)[None] if views == "center" \
                    else ten_views(chunk, preprocessing)      # [V, b, 3, crop, crop]
                v, b = x.shape[:2]
                x = x.reshape(v * b, *x.shape[2:])
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                    enabled=amp_dtype is not None):
                    logits = model(x)
                probs = logits.float().softmax(dim=1).view(v, b, -1)
                out.append(probs.mean(dim=0))
    finally:
        model.train(was_training)
    if not out:
        return torch.zeros(0, getattr(model, "num_classes", 0), device=device)
    return torch.cat(out)


def iterate_images(images, labels, indices: Sequence[int] | None,
                   batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(uint8 [b, H, W, 3], int64 [b]) CPU batches of `images[indices]` in index order."""
    labels = np.asarray(labels)
    idx = np.arange(len(labels)) if indices is None else np.asarray(indices, dtype=np.int64)
    for start in range(0, len(idx), batch_size):
        part = idx[start:start + batch_size]
        # Fancy indexing on a memmap reads only these rows; contiguous ranges read fastest.
        yield torch.from_numpy(np.ascontiguousarray(images[part])), \
            torch.from_numpy(labels[part].astype(np.int64))


def evaluate(model: nn.Module, store_or_images, labels=None, preprocessing=None,
             views: str = "center", *, indices: Sequence[int] | None = None,
             batch_size: int = 256, amp_dtype: torch.dtype | None = None,
             reduce=None, show_progress: bool = False) -> dict:
    """Top-1/top-5 error of `model` on a store (or images + labels), as fractions.

    store_or_images: a Store (its images and labels are used, labels unless given) or uint8
    images [N, H, W, 3]. preprocessing: the model's own (a checkpoint's), always given.
    indices: evaluate only these images (e.g. a validation split or this rank's shard).
    reduce: optional function summing a tensor over ranks.
    Returns {"top1_error", "top5_error", "images", "views"}.
    """
    images = getattr(store_or_images, "images", store_or_images)
    labels = getattr(store_or_images, "labels", None) if labels is None else labels
    if labels is None or preprocessing is None:
        raise ValueError("labels (for bare images) and the model's preprocessing are needed")
    device = model_device(model)
    counts = torch.zeros(3, dtype=torch.long, device=device)   # top1, top5 correct, images
    total = len(labels) if indices is None else len(indices)
    with progress(total, f"evaluating ({views_name(views)})", unit="img",
                  enabled=show_progress) as bar:
        for x, y in iterate_images(images, labels, indices, batch_size):
            probs = view_probabilities(model, x, preprocessing, views, batch_size, amp_dtype)
            y = y.to(device)
            counts[:2] += topk_correct(probs, y, (1, 5))
            counts[2] += y.numel()
            bar.advance(y.numel())
    if reduce is not None:
        counts = reduce(counts)
    top1, top5, n = counts.tolist()
    return {"top1_error": error_fraction(n - top1, n), "top5_error": error_fraction(n - top5, n),
            "images": n, "views": views}


def error_fraction(wrong: int, images: int) -> float:
    """wrong / images as one division of integers, so 159 of 1000 is 0.159 and not
    1 - 841/1000 = 0.15900000000000003; no images count as all wrong."""
    return wrong / images if images else 1.0
