"""The CIFAR-10 networks the paper cites, after cuda-convnet's layer files.

Pooling rounds its output size up, as cuda-convnet does (`ceil_mode=True`), so the map sizes
below match the original configurations.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from alexnet.models.layers import LocallyConnected2d, LocalResponseNorm, WithinMapNorm

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


class CifarNet(nn.Module):
    """Shared head logic: `features` end in conv maps, `classifier` holds one linear layer."""

    features: nn.Sequential
    classifier: nn.Linear

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(features, 1)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class CifarConvLocal(CifarNet):
    """cuda-convnet `layers-conv-local-11pct.cfg` ("11%" net; `lrn=False` is the "13%" one).

    24x24 crop -> conv1 64 5x5 ReLU -> cross-map norm -> max-pool 3/2 (12x12)
    -> conv2 64 5x5 ReLU -> cross-map norm -> max-pool 3/2 (6x6)
    -> local3 32 3x3 ReLU -> local4 32 3x3 ReLU -> fc10.
    The norm is cuda-convnet's: size 5, scale 0.001 shared over the 5 terms, pow 0.75, k=1.
    """

    input_size = 24

    def __init__(self, num_classes: int = 10, lrn: bool = True, overlap_pool: bool = True,
                 init: str = "pytorch"):
        super().__init__()
        if init != "pytorch":
            raise ValueError(f"init must be 'pytorch' for this network, got {init!r}")

        def norm() -> nn.Module:
            return LocalResponseNorm(64, size=5, alpha=1e-3, beta=0.75, k=1.0) if lrn \
                else nn.Identity()

        def pool() -> nn.Module:
            return nn.MaxPool2d(3, 2, ceil_mode=True) if overlap_pool else nn.MaxPool2d(2, 2)

        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 64, 5, padding=2)),
            ("relu1", nn.ReLU(inplace=True)),
            ("norm1", norm()),
            ("pool1", pool()),
            ("conv2", nn.Conv2d(64, 64, 5, padding=2)),
            ("relu2", nn.ReLU(inplace=True)),
            ("norm2", norm()),
            ("pool2", pool()),
            ("local3", LocallyConnected2d(64, 32, 6, 3, padding=1)),
            ("relu3", nn.ReLU(inplace=True)),
            ("local4", LocallyConnected2d(32, 32, 6, 3, padding=1)),
            ("relu4", nn.ReLU(inplace=True)),
        ]))
        self.classifier = nn.Linear(32 * 6 * 6, num_classes)


class Cifar4Layer(CifarNet):
    """cuda-convnet `layers-18pct.cfg`: three conv layers and a linear one (paper Fig. 1).

    32x32 -> conv1 32 5x5 -> max-pool 3/2 (16) -> within-map norm 3x3 -> conv2 32 5x5
    -> avg-pool 3/2 (8) -> norm -> conv3 64 5x5 -> avg-pool 3/2 (4) -> fc10,
    with `activation` ("relu" or "tanh") after every conv layer.

    init: "pytorch" (PyTorch's defaults) or "cuda-convnet", the layer file's own: weights
    from zero-mean Gaussians with std 0.0001 (conv1) and 0.01 (conv2, conv3, fc10), zero
    biases. The latter is the network as the paper's authors initialised it.
    """

    CUDA_CONVNET_STD = {"conv1": 1e-4, "conv2": 1e-2, "conv3": 1e-2, "classifier": 1e-2}

    input_size = 32

    def __init__(self, num_classes: int = 10, activation: str = "relu", norm: bool = True,
                 init: str = "pytorch"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if init not in ("pytorch", "cuda-convnet"):
            raise ValueError(f"init must be 'pytorch' or 'cuda-convnet', got {init!r}")
        act = ACTIVATIONS[activation]

        def within_map_norm() -> nn.Module:
            return WithinMapNorm(3, alpha=5e-5, beta=0.75, k=1.0) if norm else nn.Identity()

        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 32, 5, padding=2)),
            ("act1", act()),
            ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("norm1", within_map_norm()),
            ("conv2", nn.Conv2d(32, 32, 5, padding=2)),
            ("act2", act()),
            ("pool2", nn.AvgPool2d(3, 2, ceil_mode=True)),
            ("norm2", within_map_norm()),
            ("conv3", nn.Conv2d(32, 64, 5, padding=2)),
            ("act3", act()),
            ("pool3", nn.AvgPool2d(3, 2, ceil_mode=True)),
        ]))
        self.classifier = nn.Linear(64 * 4 * 4, num_classes)
        if init == "cuda-convnet":
            for name, module in self.named_modules():
                std = self.CUDA_CONVNET_STD.get(name.rsplit(".", 1)[-1])
                if std is not None:
                    nn.init.normal_(module.weight, 0.0, std)
                    nn.init.zeros_(module.bias)
