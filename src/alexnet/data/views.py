"""Test-time views (paper §4.1): the centre patch, or the four corner patches and the centre
patch together with their horizontal reflections, normalised exactly like training patches
(mean image taken at each patch's own location, subtracted before the reflection).
"""

from __future__ import annotations

import torch

from alexnet.data.augment import normalize
from alexnet.data.image_file import _to_rgb, load_image, resize_center_crop
from alexnet.data.normalization import Preprocessing


def view_offsets(side: int, crop: int) -> list[tuple[int, int]]:
    """(top, left) of the five patches: top-left, top-right, bottom-left, bottom-right, centre."""
    far, centre = side - crop, int(round((side - crop) / 2.0))
    return [(0, 0), (0, far), (far, 0), (far, far), (centre, centre)]


def _check(images: torch.Tensor, preprocessing: Preprocessing) -> tuple[int, int]:
    if images.dim() != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images [B,H,W,3], got {images.dtype} "
                         f"{list(images.shape)}")
    side, crop = images.shape[1], preprocessing.crop
    if crop > side:
        raise ValueError(f"crop {crop} is larger than the images ({side}x{side})")
    return side, crop


def center_view(images: torch.Tensor, preprocessing: Preprocessing,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 [B,S,S,3] -> float [B,3,crop,crop]: the normalised centre patch."""
    side, crop = _check(images, preprocessing)
    top, left = view_offsets(side, crop)[4]
    patch = images[:, top:top + crop, left:left + crop]
    return normalize(patch, preprocessing, top=top, left=left, dtype=dtype).contiguous()


def ten_views(images: torch.Tensor, preprocessing: Preprocessing,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 [B,S,S,3] -> float [10,B,3,crop,crop]: the five patches, then their mirrors."""
    side, crop = _check(images, preprocessing)
    five = [normalize(images[:, top:top + crop, left:left + crop], preprocessing, top=top,
                      left=left, dtype=dtype) for top, left in view_offsets(side, crop)]
    five = torch.stack(five)                                   # [5,B,3,c,c]
    return torch.cat([five, five.flip(-1)]).contiguous()


class ImageTransform:
    """An image -> the float [3, crop, crop] network input of `preprocessing`, exactly as
    `alexnet predict` makes it (centre view): shorter side resized to the stored size
    (Pillow's antialiased bilinear), the central size x size crop, then the central
    crop x crop patch minus the mean (image) at that place and divided by each channel's std.

    Takes a file path, a PIL image, or a uint8 [H, W, 3] RGB array (any size). For a batch,
    stack: `model(torch.stack([transform(a), transform(b)]))`.
    """

    def __init__(self, preprocessing: Preprocessing):
        self.preprocessing = preprocessing

    def __repr__(self) -> str:
        return f"ImageTransform({self.preprocessing!r})"

    def __call__(self, image) -> torch.Tensor:
        import os

        import numpy as np
        from PIL import Image

        size = self.preprocessing.size
        if isinstance(image, (str, os.PathLike)):
            pixels = load_image(image, size)
        else:
            if not isinstance(image, Image.Image):
                image = Image.fromarray(np.asarray(image, dtype=np.uint8))
            pixels = resize_center_crop(_to_rgb(image, []), size)
        return center_view(torch.from_numpy(pixels)[None], self.preprocessing)[0]
