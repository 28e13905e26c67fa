"""How a stored uint8 image becomes a network input (`Preprocessing`), carried inside every
checkpoint.

The paper (§2): shorter side to `size` (256), central size x size crop, subtract the mean
image; the network then sees `crop` x `crop` (224) patches. torchvision's recipe instead
divides by 255 and normalises each channel. Both are a per-pixel (or per-channel) mean and a
per-channel scale on the 0-255 scale, which is all this records. The builders: a store's
own statistics (`Store.preprocessing`) or torchvision's ImageNet ones
(`imagenet_preprocessing`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch

# torchvision's ImageNet statistics, on the 0-255 scale.
IMAGENET_CHANNEL_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_CHANNEL_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclass(frozen=True, repr=False)
class Preprocessing:
    size: int = 256                      # stored image side: shorter side resized, centre crop
    crop: int = 224                      # model input side
    mean_image: torch.Tensor | None = field(default=None, compare=False)  # [size, size, 3]
    channel_mean: tuple[float, float, float] = (0.0, 0.0, 0.0)  # used when no mean image
    channel_std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def kind(self) -> str:
        """What is done to a pixel (0-255) before the network sees it, named as the training
        setting `normalize` names it: "mean-image" (minus the mean image), "mean-image-std"
        (minus the mean image, divided by each channel's std), "per-channel" (minus each
        channel's mean, divided by its std: torchvision's `Normalize` on the 0-255 scale)."""
        if self.mean_image is None:
            return "per-channel"
        return "mean-image" if tuple(self.channel_std) == (1.0, 1.0, 1.0) else "mean-image-std"

    def __repr__(self) -> str:      # the mean image by its shape, not its 200,000 numbers
        mean = f"mean_image={list(self.mean_image.shape)}" if self.mean_image is not None \
            else f"channel_mean={tuple(round(v, 3) for v in self.channel_mean)}"
        return (f"Preprocessing(kind={self.kind!r}, size={self.size}, crop={self.crop}, "
                f"{mean}, channel_std={tuple(round(v, 3) for v in self.channel_std)})")

    def mean_tensor(self, device=None) -> torch.Tensor:
        """The mean to subtract from [N, 3, size, size] images: [3, size, size] or [3, 1, 1]."""
        if self.mean_image is not None:
            return self.mean_image.to(device, torch.float32).permute(2, 0, 1)
        return torch.tensor(self.channel_mean, device=device).view(3, 1, 1)

    def std_tensor(self, device=None) -> torch.Tensor:
        return torch.tensor(self.channel_std, device=device).view(3, 1, 1)

    def to_checkpoint(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(JSON-able description, tensors) for a safetensors file."""
        # The file's "kind" names the mean only (a mean image or per-channel means); the
        # std is always applied, and recorded beside it.
        kind = "per-channel" if self.mean_image is None else "mean-image"
        info = {"size": self.size, "crop": self.crop, "kind": kind,
                "channel_mean": list(self.channel_mean), "channel_std": list(self.channel_std)}
        tensors = {} if self.mean_image is None else {
            "preprocessing.mean_image": self.mean_image.float().contiguous()}
        return info, tensors

    @classmethod
    def from_checkpoint(cls, info: dict | str, tensors: dict[str, torch.Tensor]) -> Preprocessing:
        if isinstance(info, str):
            info = json.loads(info)
        return cls(size=int(info["size"]), crop=int(info["crop"]),
                   mean_image=tensors.get("preprocessing.mean_image"),
                   channel_mean=tuple(info["channel_mean"]), channel_std=tuple(info["channel_std"]))


def imagenet_preprocessing(size: int = 256, crop: int = 224) -> Preprocessing:
    """torchvision's ImageNet normalisation: its per-channel mean and std, no mean image."""
    return Preprocessing(size=size, crop=crop, channel_mean=IMAGENET_CHANNEL_MEAN,
                         channel_std=IMAGENET_CHANNEL_STD)
