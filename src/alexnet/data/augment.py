"""The paper's training augmentation as batched tensor functions (paper §4.1).

Everything here runs on whatever device the images are on (GPU in training, CPU in tests) and
takes a `torch.Generator` on that device, so a run is reproducible. The randomness is drawn
for the whole batch at once; the crops are gathered for the whole batch (index ops over the
batch's bytes), except on a CPU with large crops, where `TrainAugment` reads each image's
crop as a strided view, one image at a time (`PER_IMAGE_MIN_CROP`: cheaper than the copies).

Layouts: uint8 images are NHWC ([B, H, W, 3], as stored); float images are NCHW.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from alexnet.data.normalization import Preprocessing
from alexnet.data.threads import single_threaded, thread_pool


def _is_nhwc(images: torch.Tensor) -> bool:
    return images.dtype == torch.uint8


def random_offsets(batch: int, side: int, crop: int, generator: torch.Generator,
                   device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top and left offsets, each int64 [B], uniform over all side - crop + 1 positions."""
    if crop > side:
        raise ValueError(f"crop {crop} is larger than the image side {side}")
    top = torch.randint(0, side - crop + 1, (batch,), generator=generator, device=device)
    left = torch.randint(0, side - crop + 1, (batch,), generator=generator, device=device)
    return top, left


def crop_at(image: torch.Tensor, top: torch.Tensor, left: torch.Tensor, crop: int) -> torch.Tensor:
    """Crops of one image [C, H, W] (the mean image) at per-sample offsets top, left (int64
    [B]) -> [B, C, crop, crop], read through a strided window view (`unfold`)."""
    windows = image.unfold(1, crop, 1).unfold(2, crop, 1)     # [C, H', W', c, c]
    return windows[:, top, left].transpose(0, 1).contiguous()


def crop_flip(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor,
              crop: int) -> torch.Tensor:
    """uint8 NHWC [B,H,W,C] -> [B,crop,crop,C] contiguous: per-sample crops, mirrored where
    `flip` (bool [B]). Two index ops, both over contiguous runs of bytes: the crop's rows are
    picked from the [B*H, W*C] byte matrix (index_select), then each row's pixels in forward
    or reversed order (gather)."""
    b, h, w, ch = images.shape
    device = top.device
    steps = torch.arange(crop, device=device)
    rows = ((torch.arange(b, device=device) * h + top)[:, None] + steps).reshape(-1)
    pixels = left[:, None] + torch.where(flip[:, None], crop - 1 - steps, steps)   # [B, c]
    cols = (pixels[:, :, None] * ch + torch.arange(ch, device=device)).view(b, 1, crop * ch)
    picked = images.reshape(b * h, w * ch).index_select(0, rows).view(b, crop, w * ch)
    return torch.gather(picked, 2, cols.expand(b, crop, crop * ch)).view(b, crop, crop, ch)


def lighting_shifts(batch: int, eigvals: torch.Tensor, eigvecs: torch.Tensor, std: float,
                    generator: torch.Generator) -> torch.Tensor:
    """The paper's PCA colour shift per image, float [B, 3] on the 0-255 scale:
    eigvecs @ (alpha * sqrt(eigvals)), alpha ~ N(0, std) drawn per image."""
    alpha = torch.randn(batch, 3, generator=generator, device=eigvals.device) * std
    scaled = alpha * eigvals.clamp_min(0).sqrt()                    # [B, 3]
    # shift[b, i] = sum_j eigvecs[i, j] * scaled[b, j]; a broadcast sum, not a [B,3]x[3,3]
    # BLAS call, whose thread start-up cost 30 ms on a busy 2-core host.
    return (scaled[:, None, :] * eigvecs).sum(-1)


def cut_out(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, size: int) -> None:
    """Zero in place a size x size square of each image of x [B,C,h,w], centred at (rows[b],
    cols[b]) and clipped at the borders: Cutout (DeVries & Taylor, 2017), not in the paper.
    After normalisation zero is the mean, so the square shows the mean image there."""
    h, w = x.shape[-2:]
    def inside(centres: torch.Tensor, side: int) -> torch.Tensor:    # bool [B, side]
        first = (centres - size // 2)[:, None]
        at = torch.arange(side, device=x.device)
        return (at >= first) & (at < first + size)
    x.masked_fill_(inside(rows, h)[:, None, :, None] & inside(cols, w)[:, None, None, :], 0)


def _per_sample(value, default: int, batch: int, device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    return torch.full((batch,), default if value is None else int(value), device=device)


def normalize(images: torch.Tensor, preprocessing: Preprocessing, top=None, left=None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(x - mean) / std as float NCHW [B,3,h,w] from uint8 NHWC or float NCHW.

    A mean image is taken at the images' own location: the whole mean when h equals
    `preprocessing.size`, else the h x h crop at (top, left) (ints or int64 [B]; default: the
    centre crop's offset).
    """
    x = images.permute(0, 3, 1, 2).float() if _is_nhwc(images) else images.float()
    batch, h = x.shape[0], x.shape[-1]
    mean = preprocessing.mean_tensor(x.device)                     # [3,S,S] or [3,1,1]
    if mean.shape[-1] > 1 and h != mean.shape[-1]:
        centre = int(round((mean.shape[-1] - h) / 2.0))
        mean = crop_at(mean, _per_sample(top, centre, batch, x.device),
                       _per_sample(left, centre, batch, x.device), h)   # [B,3,h,h]
    return ((x - mean) * (1.0 / preprocessing.std_tensor(x.device))).to(dtype)


class _Constants(NamedTuple):
    """Per-device tensors TrainAugment computes once."""

    windows: torch.Tensor | None   # [2,S',S',3,c,c] crop windows of `means`
    bias: torch.Tensor             # -mean/std: [3,S,S] (mean image) or [3,1,1]
    inv_std: torch.Tensor          # [3,1,1]
    eigvals: torch.Tensor
    eigvecs: torch.Tensor
    means: torch.Tensor | None     # [2,S,S,3]: bias and its mirror image, HWC


class TrainAugment:
    """Random crop to `preprocessing.crop`, flip, PCA lighting, mean subtraction at the crop's
    own location of the mean image, division by std: uint8 [B,S,S,3] -> float [B,3,c,c];
    then, if `cutout`, a square of that side zeroed at a random place in each crop.

    A flipped patch is the mirror of the normalised patch: the mean is taken at the patch's
    own location and mirrored with it. (The 2012 code crops and flips, then subtracts one
    fixed centre crop of the mean image from every patch; see the README's fidelity notes.) The mean is looked up in [mean, mirrored mean] at the
    mirrored offset, which makes the flip a cheap uint8 operation on the images only.
    Memory passes are few because each is a full read and write of the batch: one uint8
    gather, one gather of the (negated, pre-divided) mean, one in-place add of the colour
    shift and one multiply-add; the gathers produce channels-last strides, so channels_last
    output costs nothing extra and NCHW output one copy. On a CPU, large crops skip both
    gathers: each image's crop is a strided view of the batch and of the mean, read by one
    elementwise op per image (`PER_IMAGE_MIN_CROP`).
    """

    # From this crop side up, the CPU works image by image on views (no gathered copies; at
    # 224, a batch of 128 took 16 ms instead of 79 on one core); for small crops a few ops
    # per image would cost more in Python overhead than the copies they save.
    PER_IMAGE_MIN_CROP = 64

    def __init__(self, preprocessing: Preprocessing, eigvals, eigvecs, flip: bool = True,
                 lighting_std: float = 0.1, channels_last: bool = False,
                 dtype: torch.dtype = torch.float32, cutout: int = 0):
        self.preprocessing = preprocessing
        self.eigvals = torch.as_tensor(eigvals, dtype=torch.float32)
        self.eigvecs = torch.as_tensor(eigvecs, dtype=torch.float32)
        self.flip, self.lighting_std = flip, float(lighting_std)
        self.channels_last, self.dtype, self.cutout = channels_last, dtype, int(cutout)
        self._cache: dict = {}

    def _constants(self, device):
        key = str(device)
        if key not in self._cache:
            inv_std = 1.0 / self.preprocessing.std_tensor(device)       # [3,1,1]
            bias = -self.preprocessing.mean_tensor(device) * inv_std    # [3,S,S] or [3,1,1]
            windows = both = None
            if bias.shape[-1] > 1:
                # [2,S,S,3], HWC like the images so the cropped means share their strides.
                both = torch.stack([bias, bias.flip(-1)]).permute(0, 2, 3, 1).contiguous()
                windows = both.unfold(1, self.preprocessing.crop, 1).unfold(
                    2, self.preprocessing.crop, 1)                      # [2,S',S',3,c,c]
            self._cache[key] = _Constants(windows, bias, inv_std, self.eigvals.to(device),
                                          self.eigvecs.to(device), both)
        return self._cache[key]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, side, crop = images.shape[0], images.shape[1], self.preprocessing.crop
        device = images.device
        if self.preprocessing.mean_image is not None and side != self.preprocessing.size:
            raise ValueError(f"images are {side}x{side} but the mean image is "
                             f"{self.preprocessing.size}x{self.preprocessing.size}")
        # All randomness is drawn for the whole batch first, so the result does not depend
        # on how the work is split below.
        top, left = random_offsets(batch, side, crop, generator, device)
        flip = torch.rand(batch, generator=generator, device=device) < 0.5 if self.flip \
            else torch.zeros(batch, dtype=torch.bool, device=device)
        shift = None
        if self.lighting_std > 0:
            const = self._constants(device)
            shift = lighting_shifts(batch, const.eigvals, const.eigvecs, self.lighting_std,
                                    generator)
        centres = torch.randint(0, crop, (2, batch), generator=generator, device=device) \
            if self.cutout else None
        out = self.apply(images, top, left, flip, shift)
        if centres is not None:
            cut_out(out, centres[0], centres[1], self.cutout)
        return out

    def apply(self, images: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
              flip: torch.Tensor, shift: torch.Tensor | None) -> torch.Tensor:
        """The augmentation for given draws: offsets int64 [B], flip bool [B], colour shift
        float [B,3] on the 0-255 scale (or None)."""
        batch, crop, device = images.shape[0], self.preprocessing.crop, images.device
        if shift is not None:
            shift = shift[:, :, None, None] * self._constants(device).inv_std   # [B,3,1,1]
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        out = torch.empty(batch, 3, crop, crop, dtype=self.dtype, device=device,
                          memory_format=fmt)
        args = (images, top, left, flip, shift, out)
        if device.type != "cpu":
            self._gathered(*args, 0, batch)   # a GPU takes the batch whole
            return out
        threads = torch.get_num_threads()
        if crop >= self.PER_IMAGE_MIN_CROP:
            part, block = self._per_image, -(-batch // threads)
        else:
            # Every pass over a large float batch goes to DRAM; blocks of ~1.5 MB stay in
            # cache across the passes (4x faster on a 2-core VM).
            part, block = self._gathered, min(self._cpu_block(crop), batch)
        starts = range(0, batch, block)
        # Blocks are shared out to threads that each run torch single-threaded: the caller's
        # intra-op thread budget without a parallel region (and its barrier) per small op,
        # which on a busy machine made small CIFAR batches 20x slower.
        if threads > 1 and block < batch:
            list(thread_pool(threads).map(lambda s: part(*args, s, min(s + block, batch)),
                                          starts))
            return out
        # One block (small images) or one thread: here, single-threaded for the duration
        # (handing one block to another thread costs a scheduler wake-up, ms on a busy host).
        with single_threaded():
            for s in starts:
                part(*args, s, min(s + block, batch))
        return out

    def _normalise_into(self, out, x, b, sh) -> None:
        """out = x/std - mean/std (b) + shift/std (sh, or None), in out's layout and dtype;
        a patch with a colour shift is then divided by 1 + lighting_std, as the 2012 code
        did ("so that the overall scale of the training data doesn't become too different
        from the test data")."""
        noisy = sh is not None
        if noisy and self.dtype != torch.float32:
            b, sh = b + sh, None               # add before rounding to a short float
        if all(v == 1.0 for v in self.preprocessing.channel_std):
            torch.add(b, x, out=out)           # the paper's preprocessing: no division
        else:
            torch.addcmul(b, x, self._constants(out.device).inv_std, out=out)
        if sh is not None:
            out.add_(sh)
        if noisy:
            out.mul_(1.0 / (1.0 + self.lighting_std))

    def _gathered(self, images, top, left, flip, shift, out, s: int, e: int) -> None:
        """Images s..e as a batch: one uint8 gather of the crops (mirrored where flipped),
        one gather of the mean windows, then the normalisation."""
        side, crop = images.shape[1], self.preprocessing.crop
        const = self._constants(images.device)
        x = crop_flip(images[s:e], top[s:e], left[s:e], flip[s:e], crop)
        b, windows = const.bias, const.windows
        if windows is not None:
            # Flipped patch at `left` = mirror of the patch of the mirrored mean at side-c-left.
            f = flip[s:e]
            b = windows[f.long(), top[s:e], torch.where(f, side - crop - left[s:e], left[s:e])]
        self._normalise_into(out[s:e], x.permute(0, 3, 1, 2), b,
                             None if shift is None else shift[s:e])

    def _per_image(self, images, top, left, flip, shift, out, s: int, e: int) -> None:
        """Images s..e one by one (the CPU, large crops): each crop, and its mean, is a
        strided view, read by one elementwise op with no gathered copy in between."""
        side, crop = images.shape[1], self.preprocessing.crop
        const = self._constants(images.device)
        for i, t, left_i, f in zip(range(s, e), top[s:e].tolist(), left[s:e].tolist(),
                                   flip[s:e].tolist(), strict=True):
            x = images[i, t:t + crop, left_i:left_i + crop]
            if f:
                x = x.flip(1)        # a uint8 copy: a quarter of the float output's bytes
            b = const.bias                                              # [3,1,1]
            if const.means is not None:   # the mirrored mean at the mirrored offset, as above
                m = side - crop - left_i if f else left_i
                b = const.means[int(f), t:t + crop, m:m + crop].permute(2, 0, 1)
            self._normalise_into(out[i], x.permute(2, 0, 1), b,
                                 None if shift is None else shift[i])

    @staticmethod
    def _cpu_block(crop: int) -> int:
        return max(1, (3 << 19) // (crop * crop * 3 * 4))
