"""The CIFAR-10 networks the paper cites, after cuda-convnet's layer files.

Pooling rounds its output size up, as cuda-convnet does (`ceil_mode=True`), so the map sizes
below match the original configurations. `features` runs in the order it prints; where a
ReLU meets a max-pool it comes after the pool (they commute exactly, and the ReLU then
touches a quarter of the values), and a ReLU before a cross-map norm is done inside the
norm (`LocalResponseNorm(relu_first=True)`): the same function as the files' order.
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


def cuda_convnet_init(model: nn.Module, stds: dict[str, float]) -> None:
    """The layer files' `initW`: zero-mean Gaussian weights with a per-layer std, zero biases.

    `stds` maps a layer's name (the last part of its module path) to its std."""
    for name, module in model.named_modules():
        std = stds.get(name.rsplit(".", 1)[-1])
        if std is not None:
            nn.init.normal_(module.weight, 0.0, std)
            nn.init.zeros_(module.bias)


INITS = ("pytorch", "cuda-convnet")


def check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(map(repr, INITS))}, got {init!r}")


def cuda_convnet_blocks(lrn: bool, overlap_pool: bool, groups: int,
                        conv2_groups: int = 1) -> list[tuple[str, nn.Module]]:
    """The 11% file's layers from conv1's ReLU to pool2: ReLU, pool1, norm1, conv2, ReLU,
    norm2, pool2 (pool1 *then* norm1, norm2 *then* pool2, as the file has them), with each
    ReLU fused into the norm after it, or, without norms, after its pool. `groups`: the
    norms' windows stop at group (tower) boundaries; `conv2_groups`: conv2's groups."""
    def pool() -> nn.Module:
        return nn.MaxPool2d(3, 2, ceil_mode=True) if overlap_pool else nn.MaxPool2d(2, 2)

    conv2 = ("conv2", nn.Conv2d(64, 64, 5, padding=2, groups=conv2_groups))
    if not lrn:
        return [("pool1", pool()), ("relu1", nn.ReLU(inplace=True)), conv2,
                ("pool2", pool()), ("relu2", nn.ReLU(inplace=True))]

    def norm() -> nn.Module:
        return LocalResponseNorm(64, size=CifarConvLocal.NORM_SIZE,
                                 alpha=CifarConvLocal.NORM_SCALE, beta=CifarConvLocal.NORM_POW,
                                 k=1.0, groups=groups, relu_first=True)

    return [("pool1", pool()), ("norm1", norm()), conv2, ("norm2", norm()), ("pool2", pool())]


class CifarConvLocal(CifarNet):
    """cuda-convnet's `layers-conv-local-11pct.cfg`, the "11%" net of the paper's §3.3.

    24x24 crop -> conv1 64 5x5 ReLU -> max-pool 3/2 (12x12) -> cross-map norm
    -> conv2 64 5x5 ReLU -> cross-map norm -> max-pool 3/2 (6x6)
    -> local3 64 3x3 ReLU -> local4 32 3x3 ReLU -> fc10: 2,112,970 parameters.

    The order is the file's: pool1 *then* norm1, but norm2 *then* pool2. The norms are
    cuda-convnet's `cmrnorm` (size 9, scale 0.001 shared over the 9 terms, pow 0.75, k=1).
    `lrn=False` drops the two norms and nothing else (a clean ablation; the published "13%"
    file is `CifarConvLocal13`, which also halves local3). Pooling rounds up as cuda-convnet
    does (`ceil_mode`). `init="cuda-convnet"`: the file's initW (conv1 1e-4, conv2 1e-2,
    local3/4 0.04, fc10 0.01, zero biases); "pytorch": PyTorch's defaults.
    """

    input_size = 24
    local3_channels = 64
    NORM_SIZE, NORM_SCALE, NORM_POW = 9, 1e-3, 0.75
    CUDA_CONVNET_STD = {"conv1": 1e-4, "conv2": 1e-2, "local3": 0.04, "local4": 0.04,
                        "classifier": 1e-2}

    def __init__(self, num_classes: int = 10, lrn: bool = True, overlap_pool: bool = True,
                 init: str = "pytorch"):
        super().__init__()
        check_init(init)

        width = self.local3_channels
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 64, 5, padding=2)),
            *cuda_convnet_blocks(lrn, overlap_pool, groups=1),
            ("local3", LocallyConnected2d(64, width, 6, 3, padding=1)),
            ("relu3", nn.ReLU(inplace=True)),
            ("local4", LocallyConnected2d(width, 32, 6, 3, padding=1)),
            ("relu4", nn.ReLU(inplace=True)),
        ]))
        self.classifier = nn.Linear(32 * 6 * 6, num_classes)
        if init == "cuda-convnet":
            cuda_convnet_init(self, self.CUDA_CONVNET_STD)


class CifarConvLocal13(CifarConvLocal):
    """cuda-convnet's `layers-conv-local-13pct.cfg`, the "13%" net of the paper's §3.3.

    The 11% net's layers without its two norms and with local3 32 wide instead of 64:
    1,116,490 parameters. The paper's 13% -> 11% compares this file with the 11% one.
    """

    local3_channels = 32

    def __init__(self, num_classes: int = 10, overlap_pool: bool = True, init: str = "pytorch"):
        super().__init__(num_classes, lrn=False, overlap_pool=overlap_pool, init=init)


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
        check_init(init)
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
            cuda_convnet_init(self, self.CUDA_CONVNET_STD)
