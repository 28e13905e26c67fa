"""torchvision's single-tower AlexNet, with its exact parameter names and shapes.

This is the later "one weird trick" variant (64/192/384/256/256 kernels, no LRN, adaptive
average pooling to 6x6) that `torchvision.models.alexnet` implements. Keeping the module
indices identical means torchvision's state dict loads here with `strict=True` and back,
and the layers run in torchvision's order.
"""

from __future__ import annotations

import torch
from torch import nn


class AlexNetTorchvision(nn.Module):
    input_size = 224

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, init: str = "pytorch"):
        super().__init__()
        if init != "pytorch":
            raise ValueError(f"init must be 'pytorch' for this variant, got {init!r}")
        # Indices matter: they are the parameter names (features.0.weight, classifier.1.bias).
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),   # 0
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),            # 3
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),           # 6
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),           # 8
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),           # 10
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),                            # 1
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),                                   # 4
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),                            # 6
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] -> [N, 256, 6, 6] (adaptive pooling makes any size >= 63 work)."""
        return self.avgpool(self.features(x))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(features, 1)
        last = len(self.classifier) - 1
        for index, layer in enumerate(self.classifier):
            if pre_logits and index == last:
                return x
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
