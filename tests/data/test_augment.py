"""Batched augmentation: crops, flips, PCA lighting and normalisation as tensor functions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alexnet.data.augment import (
    TrainAugment,
    crop_at,
    crop_flip,
    cut_out,
    lighting_shifts,
    normalize,
    random_offsets,
)
from alexnet.data.normalization import Preprocessing


def _positions(side: int, batch: int) -> torch.Tensor:
    """uint8 [B, side, side, 3] whose pixel (y, x) holds y in channel 0 and x in channel 1."""
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    img = torch.stack([ys, xs, torch.zeros_like(ys)], -1).to(torch.uint8)
    return img.expand(batch, side, side, 3).contiguous()


def test_random_offsets_cover_every_crop_position_and_crops_are_slices():
    side, crop = 12, 8
    images = _positions(side, 2000)
    top, left = random_offsets(2000, side, crop, torch.Generator().manual_seed(0))
    out = crop_flip(images, top, left, torch.zeros(2000, dtype=torch.bool), crop)
    assert out.shape == (2000, crop, crop, 3) and out.dtype == torch.uint8
    seen = set(zip(top.tolist(), left.tolist(), strict=True))
    assert seen == {(t, left) for t in range(side - crop + 1) for left in range(side - crop + 1)}
    for i in range(0, 2000, 97):  # every crop is the plain slice at its offset
        t, left_i = int(top[i]), int(left[i])
        assert torch.equal(out[i], images[i, t:t + crop, left_i:left_i + crop])
        assert (int(out[i, 0, 0, 0]), int(out[i, 0, 0, 1])) == (t, left_i)


def test_crop_at_cuts_one_image_at_each_offset():
    image = torch.randn(3, 10, 10)
    top, left = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([4, 3, 2, 1, 0])
    out = crop_at(image, top, left, 6)
    assert out.shape == (5, 3, 6, 6)
    for i in range(5):
        assert torch.equal(out[i], image[:, top[i]:top[i] + 6, left[i]:left[i] + 6])


def test_crop_flip_is_slicing_and_mirroring():
    images = torch.randint(0, 256, (6, 11, 13, 3), dtype=torch.uint8)
    top, left = torch.tensor([0, 1, 2, 3, 3, 0]), torch.tensor([5, 4, 0, 1, 5, 2])
    flip = torch.tensor([True, False, True, False, True, False])
    out = crop_flip(images, top, left, flip, 8)
    for i in range(6):
        patch = images[i, top[i]:top[i] + 8, left[i]:left[i] + 8]
        assert torch.equal(out[i], patch.flip(1) if flip[i] else patch)


def test_pca_lighting_covariance_matches_eigendecomposition():
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))
    eigvals = torch.tensor([1500.0, 140.0, 40.0])
    std = 0.1
    shifts = lighting_shifts(200_000, eigvals, q, std, torch.Generator().manual_seed(1))
    empirical = torch.cov(shifts.T.double())
    expected = (q @ torch.diag(eigvals) @ q.T * std**2).double()
    assert torch.allclose(empirical, expected, atol=0.02 * eigvals[0].item() * std**2)


def _preprocessing(side=32, crop=24, std=(2.0, 3.0, 4.0)):
    mean = torch.rand(side, side, 3, generator=torch.Generator().manual_seed(9)) * 255
    return Preprocessing(size=side, crop=crop, mean_image=mean, channel_std=std)


# The CPU's two forms: batched gathers (small crops) and views image by image (large ones).
BOTH_CPU_FORMS = pytest.mark.parametrize("min_crop", [10**6, 1], ids=["gathered", "per-image"])


@BOTH_CPU_FORMS
@pytest.mark.parametrize("std", [(2.0, 3.0, 4.0), (1.0, 1.0, 1.0)])
def test_train_augment_equals_explicit_per_image_computation(std, min_crop, monkeypatch):
    monkeypatch.setattr(TrainAugment, "PER_IMAGE_MIN_CROP", min_crop)
    pre = _preprocessing(std=std)
    images = torch.randint(0, 256, (64, 32, 32, 3), dtype=torch.uint8)
    aug = TrainAugment(pre, eigvals=torch.zeros(3), eigvecs=torch.eye(3), lighting_std=0.0)
    out = aug(images, torch.Generator().manual_seed(4))
    assert out.shape == (64, 3, 24, 24) and out.dtype == torch.float32 and out.is_contiguous()
    # The same draws on position-encoded images reveal each sample's offset and flip.
    probe = TrainAugment(Preprocessing(32, 24, mean_image=torch.zeros(32, 32, 3)),
                         torch.zeros(3), torch.eye(3), lighting_std=0.0)
    where = probe(_positions(32, 64), torch.Generator().manual_seed(4))
    mean = pre.mean_image.permute(2, 0, 1)
    std = torch.tensor(std).view(3, 1, 1)
    flips = 0
    for i in range(64):
        top = int(where[i, 0, 0, 0])
        flipped = bool(where[i, 1, 0, 0] > where[i, 1, 0, -1])
        left = int(where[i, 1, 0, -1 if flipped else 0])
        patch = (images[i].permute(2, 0, 1).float() - mean)[:, top:top + 24, left:left + 24] / std
        assert torch.allclose(out[i], patch.flip(-1) if flipped else patch, atol=1e-4)
        flips += flipped
    assert 16 < flips < 48


@BOTH_CPU_FORMS
def test_train_augment_lighting_is_one_shift_per_image(min_crop, monkeypatch):
    monkeypatch.setattr(TrainAugment, "PER_IMAGE_MIN_CROP", min_crop)
    pre = Preprocessing(size=8, crop=8, mean_image=torch.zeros(8, 8, 3))
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))
    images = torch.full((500, 8, 8, 3), 100, dtype=torch.uint8)
    out = TrainAugment(pre, torch.tensor([900.0, 100.0, 10.0]), q, flip=False)(
        images, torch.Generator().manual_seed(1))
    shifts = out[:, :, 0, 0] * 1.1 - 100    # the 2012 code divides noised patches by 1.1
    assert torch.allclose(out, out[:, :, :1, :1].expand_as(out))
    expected = q @ torch.diag(torch.tensor([900.0, 100.0, 10.0])) @ q.T * 0.01
    assert torch.allclose(torch.cov(shifts.T), expected, atol=1.0)


@BOTH_CPU_FORMS
def test_train_augment_layout_dtype_and_per_channel(min_crop, monkeypatch):
    monkeypatch.setattr(TrainAugment, "PER_IMAGE_MIN_CROP", min_crop)
    pre = Preprocessing(size=32, crop=24, channel_mean=(10.0, 20.0, 30.0))
    images = torch.full((3, 32, 32, 3), 40, dtype=torch.uint8)
    aug = TrainAugment(pre, torch.zeros(3), torch.eye(3), lighting_std=0.0, channels_last=True,
                       dtype=torch.bfloat16)
    out = aug(images, torch.Generator().manual_seed(0))
    assert out.dtype == torch.bfloat16
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out[:, :, 0, 0].float(), torch.tensor([[30.0, 20.0, 10.0]] * 3))


def test_cut_out_zeroes_one_square_per_image_clipped_at_the_borders():
    x = torch.ones(4, 3, 10, 10)
    rows, cols = torch.tensor([5, 0, 9, 4]), torch.tensor([5, 0, 2, 9])
    cut_out(x, rows, cols, 4)
    for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        expected = torch.ones(3, 10, 10)
        expected[:, max(r - 2, 0):r + 2, max(c - 2, 0):c + 2] = 0
        assert torch.equal(x[i], expected)
    assert [int((x[i, 0] == 0).sum()) for i in range(4)] == [16, 4, 12, 12]


@BOTH_CPU_FORMS
@pytest.mark.parametrize("channels_last", [False, True])
def test_train_augment_cutout_only_adds_squares_to_the_same_crops(min_crop, channels_last,
                                                                  monkeypatch):
    # Its draws come after all the others, so with cutout the crops, flips and colour shifts
    # are those of the same seed without it; every crop loses one square of at most 8 x 8.
    monkeypatch.setattr(TrainAugment, "PER_IMAGE_MIN_CROP", min_crop)
    pre = _preprocessing()
    images = torch.randint(1, 256, (64, 32, 32, 3), dtype=torch.uint8)
    args = (pre, torch.tensor([900.0, 100.0, 10.0]), torch.eye(3))
    plain = TrainAugment(*args, channels_last=channels_last)(images, torch.Generator().manual_seed(3))
    cut = TrainAugment(*args, channels_last=channels_last, cutout=8)(
        images, torch.Generator().manual_seed(3))
    zeroed = (cut == 0).all(1) & (plain != 0).all(1)                 # [B, 24, 24]
    assert torch.equal(cut[~zeroed[:, None].expand_as(cut)], plain[~zeroed[:, None].expand_as(plain)])
    counts = zeroed.sum((1, 2))
    assert counts.max() == 64 and counts.min() >= 16    # the centre is inside: >= 4 x 4 kept
    assert cut.is_contiguous(memory_format=torch.channels_last if channels_last
                             else torch.contiguous_format)


def test_normalize_takes_mean_at_the_given_location():
    pre = _preprocessing()
    images = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    whole = normalize(images, pre)
    part = normalize(images[:, 3:27, 5:29], pre, top=3, left=5)
    assert torch.allclose(part, whole[:, :, 3:27, 5:29])


def test_crop_larger_than_image_is_refused():
    with pytest.raises(ValueError):
        random_offsets(1, 8, 9, torch.Generator())


def test_a_256_store_batch_becomes_224_crops_in_one_call():
    """A 256 -> 224 batch from a numpy array goes through in one call (shape check; timing
    is in benchmarks/)."""
    pre = Preprocessing(size=256, crop=224, mean_image=torch.zeros(256, 256, 3))
    images = torch.from_numpy(np.zeros((4, 256, 256, 3), np.uint8))
    out = TrainAugment(pre, torch.ones(3), torch.eye(3))(images, torch.Generator())
    assert out.shape == (4, 3, 224, 224)


@pytest.mark.parametrize("channels_last", [False, True])
def test_cpu_blocks_give_the_same_result_as_one_pass(monkeypatch, channels_last):
    pre = _preprocessing()
    images = torch.randint(0, 256, (10, 32, 32, 3), dtype=torch.uint8)
    aug = TrainAugment(pre, torch.tensor([900.0, 100.0, 10.0]), torch.eye(3),
                       channels_last=channels_last)
    whole = aug(images, torch.Generator().manual_seed(7))
    monkeypatch.setattr(TrainAugment, "_cpu_block", staticmethod(lambda crop: 3))
    blocked = aug(images, torch.Generator().manual_seed(7))
    assert torch.allclose(whole, blocked)
    assert blocked.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mean_image", [True, False])
def test_per_image_cpu_form_equals_the_gathered_one_at_224(channels_last, dtype, mean_image):
    pre = _preprocessing(side=256, crop=224) if mean_image else \
        Preprocessing(256, 224, channel_mean=(1.0, 2.0, 3.0), channel_std=(2.0, 3.0, 4.0))
    images = torch.randint(0, 256, (6, 256, 256, 3), dtype=torch.uint8)
    aug = TrainAugment(pre, torch.tensor([900.0, 100.0, 10.0]), torch.eye(3),
                       channels_last=channels_last, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    top, left = torch.randint(0, 33, (6,), generator=g), torch.randint(0, 33, (6,), generator=g)
    flip, shift = torch.tensor([True, False] * 3), torch.randn(6, 3, generator=g) * 20
    assert TrainAugment.PER_IMAGE_MIN_CROP <= 224
    per_image = aug.apply(images, top, left, flip, shift)
    gathered = torch.empty_like(per_image)
    aug._gathered(images, top, left, flip, shift[:, :, None, None] * pre.std_tensor().reciprocal(),
                  gathered, 0, 6)
    assert per_image.dtype == dtype and torch.equal(per_image, gathered)


@pytest.mark.gpu
def test_cuda_augment_equals_cpu_for_the_same_draws():
    pre = _preprocessing(side=256, crop=224)
    images = torch.randint(0, 256, (8, 256, 256, 3), dtype=torch.uint8)
    aug = TrainAugment(pre, torch.tensor([900.0, 100.0, 10.0]), torch.eye(3))
    g = torch.Generator().manual_seed(0)
    top, left = torch.randint(0, 33, (8,), generator=g), torch.randint(0, 33, (8,), generator=g)
    flip, shift = torch.rand(8, generator=g) < 0.5, torch.randn(8, 3, generator=g)
    cpu = aug.apply(images, top, left, flip, shift)
    gpu = aug.apply(*(t.cuda() for t in (images, top, left, flip, shift)))
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)
    out = aug(images.cuda(), torch.Generator("cuda").manual_seed(0))
    assert out.shape == (8, 3, 224, 224) and out.is_cuda
