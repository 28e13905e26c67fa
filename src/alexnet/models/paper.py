"""The network of the paper's Fig. 2: two towers, LRN, overlapping pooling, dropout.

Layer by layer (224x224 input; the two towers are the two halves of every layer's kernels):

    conv1  96 (48+48) 11x11/4, pad 2  image         -> 55x55   ReLU, LRN, max-pool 3/2 -> 27
    conv2 256 (128+128) 5x5, pad 2    own tower     -> 27x27   ReLU, LRN, max-pool 3/2 -> 13
    conv3 384 (192+192) 3x3, pad 1    both towers   -> 13x13   ReLU
    conv4 384 (192+192) 3x3, pad 1    own tower     -> 13x13   ReLU
    conv5 256 (128+128) 3x3, pad 1    own tower     -> 13x13   ReLU, max-pool 3/2 -> 6
    fc6  4096, fc7 4096 (both towers, ReLU, dropout 0.5), fc8 num_classes

"Own tower" is a grouped convolution with 2 groups. The paper says 224x224 input; its code
rounds conv output sizes up, so in floor-rounding PyTorch conv1 gets padding 2 to give
55x55 (torchvision's choice; Caffe used 227 with no padding instead).

`features` runs in the order it prints, and two places differ in form (not in what is
computed) from the list above: the ReLU of conv1 and conv2 is done inside the norm that
follows it (`LocalResponseNorm(relu_first=True)`, no ReLU module there), and conv5's ReLU
comes after pool5 (max-pooling and ReLU commute exactly: max(relu(a), relu(b)) =
relu(max(a, b)), with the gradient reaching the same position, while the ReLU then touches
a quarter of the values). Without LRN, conv1's and conv2's ReLUs follow their pools too.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from alexnet.models.layers import LocalResponseNorm


class AlexNetPaper(nn.Module):
    input_size = 224

    def __init__(self, num_classes: int = 1000, lrn: bool = True, overlap_pool: bool = True,
                 towers: int = 2, cross_tower: bool = False, lrn_alpha_per_term: bool = True,
                 dropout: float = 0.5, init: str = "paper"):
        super().__init__()
        if towers not in (1, 2):
            raise ValueError(f"towers must be 1 or 2, got {towers!r}")
        if init not in ("paper", "pytorch"):
            raise ValueError(f"init must be 'paper' or 'pytorch', got {init!r}")
        # One tower has half the kernels in conv1-4; the paper keeps conv5 and the fully
        # connected layers at full size there so both nets have about the same parameters.
        w1, w2, w3, w4 = (96, 256, 384, 384) if towers == 2 else (48, 128, 192, 192)
        split = 1 if towers == 1 or cross_tower else 2  # groups of the "own tower" layers
        pool = (lambda: nn.MaxPool2d(3, 2)) if overlap_pool else (lambda: nn.MaxPool2d(2, 2))

        def relu_norm_pool(i: int, channels: int) -> list[tuple[str, nn.Module]]:
            """conv i's ReLU, LRN and max-pool (see the module docstring for the order)."""
            if not lrn:
                return [(f"pool{i}", pool()), (f"relu{i}", nn.ReLU(inplace=True))]
            norm = LocalResponseNorm(channels, size=5, alpha=1e-4, beta=0.75, k=2.0,
                                     groups=split, alpha_per_term=lrn_alpha_per_term,
                                     relu_first=True)
            return [(f"norm{i}", norm), (f"pool{i}", pool())]

        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, w1, 11, stride=4, padding=2)),
            *relu_norm_pool(1, w1),
            ("conv2", nn.Conv2d(w1, w2, 5, padding=2, groups=split)),
            *relu_norm_pool(2, w2),
            ("conv3", nn.Conv2d(w2, w3, 3, padding=1)),
            ("relu3", nn.ReLU(inplace=True)),
            ("conv4", nn.Conv2d(w3, w4, 3, padding=1, groups=split)),
            ("relu4", nn.ReLU(inplace=True)),
            ("conv5", nn.Conv2d(w4, 256, 3, padding=1, groups=split)),
            ("pool5", pool()),
            ("relu5", nn.ReLU(inplace=True)),
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc6", nn.Linear(256 * 6 * 6, 4096)),
            ("relu6", nn.ReLU(inplace=True)),
            ("drop6", nn.Dropout(dropout)),
            ("fc7", nn.Linear(4096, 4096)),
            ("relu7", nn.ReLU(inplace=True)),
            ("drop7", nn.Dropout(dropout)),
            ("fc8", nn.Linear(4096, num_classes)),
        ]))
        if init == "paper":
            self.paper_init_()

    @torch.no_grad()
    def paper_init_(self) -> None:
        """§5: weights ~ N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7, else 0."""
        ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
        for name, layer in [*self.features.named_children(), *self.classifier.named_children()]:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                layer.weight.normal_(0.0, 0.01)
                layer.bias.fill_(1.0 if name in ones else 0.0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, 224, 224] -> pooled conv5 maps [N, 256, 6, 6]."""
        return self.features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """[N, 256, 6, 6] -> logits [N, classes], or fc7's 4096-d activations if pre_logits."""
        x = torch.flatten(features, 1)
        for name, layer in self.classifier.named_children():
            if pre_logits and name == "fc8":
                return x
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
