"""cuda-convnet's 11% CIFAR-10 net cut into the paper's two towers (Fig. 2), for §6.1's claim
that one tower's conv1 kernels become colour-agnostic and the other's colour-specific.

Every layer of the 11% net (`cifar-conv-local`) keeps its total width; each tower holds half
of it. Where a layer reads from follows the paper's connectivity, layer by layer:

    cifar-towers (24x24 input)              reads          the paper's counterpart (Fig. 2)
    conv1   64 (32+32) 5x5x3, pad 2, ReLU   image          conv1  96 (48+48) 11x11x3 /4: image
    pool1   max 3/2 (24 -> 12)              own tower      pool1 (after LRN1 in the paper)
    norm1   cross-map, size 9               own tower      LRN1: per GPU in the 2012 code
    conv2   64 (32+32) 5x5x32, pad 2, ReLU  own tower      conv2 256 (128+128) 5x5x48: own
    norm2   cross-map, size 9               own tower      LRN2: per GPU
    pool2   max 3/2 (12 -> 6)               own tower      pool2
    local3  64 (32+32) 3x3x64, pad 1, ReLU  both towers    conv3 384 (192+192) 3x3x256: both
    local4  32 (16+16) 3x3x32, pad 1, ReLU  own tower      conv4, conv5 (3x3x192): own tower
    fc10    10                              both towers    fc6, fc7, fc8: both towers

"Own tower" is a grouped layer with 2 groups (conv2: `groups=2`; local4: a grouped locally
connected layer); the norms' channel windows stop at the tower boundary (`groups=2`), as
`alexnet-paper`'s. Tower a is the first half of every layer's channels. The order inside
each block is the 11% file's (pool1 *then* norm1, norm2 *then* pool2), not the paper's.

Options:
- `cross_tower=True`: every layer reads both towers (conv2 and local4 ungrouped): the split
  removed from the connections and nothing else. The norms stay per tower, so this arm
  differs from the split one in the grouped connections alone.
- `towers=1`: one tower of the same total width, which is exactly the 11% net
  (`cifar-conv-local`: the same layers, names and 2,112,970 parameters; the norms' windows
  run across all 64 maps). One tower of half the width, the paper's "one tower with half the
  kernels" ablation, would change the capacity as well as the connectivity, and the
  question here is what the tower boundary does to conv1, so the total width stays fixed.
  The chain split -> cross_tower -> towers=1 removes one thing at a time: the grouped
  connections, then the norms' boundary.
- `lrn`, `overlap_pool`, `init` ("pytorch" or the file's "cuda-convnet" Gaussians): as in
  `cifar-conv-local`.

Parameters: 1,729,994 split (conv2 and local4 hold half the weights of the 11% net's),
2,112,970 with `cross_tower` or `towers=1`.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from alexnet.models.cifar import (
    CifarConvLocal,
    CifarNet,
    check_init,
    cuda_convnet_blocks,
    cuda_convnet_init,
)
from alexnet.models.layers import LocallyConnected2d

TOWERS = 2


class CifarTowers(CifarNet):
    """The 11% net as two towers with the paper's connectivity (module docstring)."""

    input_size = 24

    def __init__(self, num_classes: int = 10, towers: int = 2, cross_tower: bool = False,
                 lrn: bool = True, overlap_pool: bool = True, init: str = "pytorch"):
        super().__init__()
        check_init(init)
        if towers not in (1, TOWERS):
            raise ValueError(f"towers must be 1 or 2, got {towers!r}")
        if cross_tower and towers == 1:
            raise ValueError("cross_tower=True needs towers=2 (one tower has nothing to cross)")
        own = 1 if towers == 1 or cross_tower else TOWERS   # groups of the "own tower" layers
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 64, 5, padding=2)),
            # pool1, norm1, conv2, norm2, pool2 as the 11% net's, the norms' windows stopping
            # at the tower boundary, conv2 reading its own tower
            *cuda_convnet_blocks(lrn, overlap_pool, groups=towers, conv2_groups=own),
            ("local3", LocallyConnected2d(64, 64, 6, 3, padding=1)),
            ("relu3", nn.ReLU(inplace=True)),
            ("local4", LocallyConnected2d(64, 32, 6, 3, padding=1, groups=own)),
            ("relu4", nn.ReLU(inplace=True)),
        ]))
        self.classifier = nn.Linear(32 * 6 * 6, num_classes)
        if init == "cuda-convnet":
            cuda_convnet_init(self, CifarConvLocal.CUDA_CONVNET_STD)
