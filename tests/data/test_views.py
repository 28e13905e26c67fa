"""Test-time views: centre patch and the paper's ten patches against explicit slicing."""

from __future__ import annotations

import torch

from alexnet.data.normalization import Preprocessing
from alexnet.data.views import center_view, ten_views


def _setup(side=32, crop=24, batch=3):
    g = torch.Generator().manual_seed(0)
    pre = Preprocessing(size=side, crop=crop, mean_image=torch.rand(side, side, 3, generator=g) * 255,
                        channel_std=(2.0, 2.0, 2.0))
    images = torch.randint(0, 256, (batch, side, side, 3), dtype=torch.uint8, generator=g)
    full = (images.permute(0, 3, 1, 2).float() - pre.mean_image.permute(2, 0, 1)) / 2.0
    return pre, images, full


def test_ten_views_match_explicit_slicing():
    pre, images, full = _setup()
    views = ten_views(images, pre)
    assert views.shape == (10, 3, 3, 24, 24)
    c, f = 24, 32 - 24
    slices = [(0, 0), (0, f), (f, 0), (f, f), (4, 4)]
    for k, (t, left) in enumerate(slices):
        patch = full[:, :, t:t + c, left:left + c]
        assert torch.allclose(views[k], patch, atol=1e-5)
        assert torch.allclose(views[k + 5], patch.flip(-1), atol=1e-5)


def test_center_view_is_the_centre_patch_of_ten_views():
    pre, images, full = _setup(side=256, crop=224, batch=2)
    centre = center_view(images, pre)
    assert torch.allclose(centre, full[:, :, 16:240, 16:240], atol=1e-4)
    assert torch.allclose(ten_views(images, pre)[4], centre)


def test_views_with_per_channel_normalisation():
    pre = Preprocessing(size=32, crop=24, channel_mean=(1.0, 2.0, 3.0))
    images = torch.full((1, 32, 32, 3), 5, dtype=torch.uint8)
    assert torch.equal(center_view(images, pre)[0, :, 0, 0], torch.tensor([4.0, 3.0, 2.0]))
