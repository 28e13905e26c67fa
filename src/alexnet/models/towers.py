"""The paper's model parallelism (§3.2): each tower of `alexnet-paper` on its own device.

Tower a and tower b each hold half the kernels of every layer and exchange activations only
where a layer reads both towers (per image, for 224x224 inputs):

    conv1-2, LRN, pools   own tower    -> pool2 maps [128, 13, 13] per tower
    conv3                 both towers  <- gather: each tower sends its 21,632 pool2 values
    conv4-5, pool5        own tower    -> pool5 maps [128, 6, 6] per tower
    fc6 (2048 per tower)  both towers  <- gather: 4,608 pool5 values per tower
    fc7 (2048 per tower)  both towers  <- gather: 2,048 fc6 outputs per tower
    fc8                   both towers  <- sum: each tower's product with its half of fc8

The backward pass of a gather sends each tower the gradient of its own part, the same volume
again; nothing else crosses. fc8: the 2012 code copied tower b's fc7 outputs to GPU 0 and ran
fc8 there (2,048 values each way per image). Here each tower multiplies its own fc7 half by
its half of fc8's columns and the partial logits are summed, the same function with fewer
values for 1,000 classes (1,000 forward, none backward: both towers compute the loss from
the same sum, so each already holds the gradient of its partial), and fc8's weights stay
split. Its bias (num_classes values) is held by both towers and added once, after the sum.

One definition of the split (`split_dim`, `Tower`, `split_forward`) serves two forms, which
exchange activations as `tower_exchange.py` says:

- `TowersOnDevices`: one process, the towers on two devices (cuda:0 and cuda:1);
- `TowerOnRank`: one process per tower (torchrun), activations exchanged with collectives
  of `torch.distributed` (NCCL on GPUs, gloo on CPUs).

Both load and save the single-device state dict (`full_state_dict`, `load_full_state_dict`):
the same names and shapes as `AlexNetPaper`, so checkpoints are identical in format.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterator

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import nn

from alexnet.errors import UserError
from alexnet.models.layers import LocalResponseNorm
from alexnet.models.paper import AlexNetPaper
from alexnet.models.tower_exchange import TOWERS, DeviceExchange, RankExchange

# The segments between two exchanges, as (part, first layer, the layer after the last):
# conv1 to pool2 (each tower alone), conv3 (reads both) to pool5, fc6, fc7.
CONV1_TO_POOL2 = ("features", "conv1", "conv3")
CONV3_TO_POOL5 = ("features", "conv3", None)
FC6 = ("classifier", "fc6", "fc7")
FC7 = ("classifier", "fc7", "fc8")


def split_dim(name: str) -> int | None:
    """The dimension of the single-device tensor `name` that the towers share out; None when
    both hold all of it (fc8's bias, added once after the towers' sum)."""
    if name == "classifier.fc8.bias":
        return None
    if name == "classifier.fc8.weight":
        return 1   # its columns: each tower multiplies the fc7 half it computed
    return 0       # every other layer: half of its kernels (output channels, neurons)


def tower_piece(name: str, tensor: torch.Tensor, tower: int) -> torch.Tensor:
    """Tower `tower`'s part of the single-device tensor `name` (a weight or its optimiser
    state, which has the weight's shape)."""
    dim = split_dim(name)
    return tensor if dim is None else tensor.chunk(TOWERS, dim)[tower].contiguous()


def merge_pieces(name: str, pieces: list[torch.Tensor]) -> torch.Tensor:
    """The single-device tensor `name` from the towers' pieces, in tower order."""
    dim = split_dim(name)
    if dim is None:
        return pieces[0]
    return torch.cat([p.to(pieces[0].device) for p in pieces], dim)


def check_splittable(model_name: str, options: dict) -> None:
    """Only the paper's two-tower network splits into towers."""
    if model_name != "alexnet-paper":
        raise UserError(f"model_parallel=2 splits the paper's two towers; it needs "
                        f"model=alexnet-paper, not {model_name!r}")
    if options.get("towers", 2) != 2 or options.get("cross_tower", False):
        raise UserError("model_parallel=2 needs the two-tower network (model.towers=2 and "
                        "model.cross_tower=false)")


def _half(name: str, layer: nn.Module) -> nn.Module:
    """A tower's copy of `layer` (shape only; the weights are loaded after)."""
    if isinstance(layer, nn.Conv2d):
        # Grouped "own tower" convolutions read their group's channels, conv1 and conv3 all.
        return nn.Conv2d(layer.in_channels // layer.groups, layer.out_channels // TOWERS,
                         layer.kernel_size, layer.stride, layer.padding,
                         dtype=layer.weight.dtype)
    if isinstance(layer, nn.Linear):
        if split_dim(f"classifier.{name}.weight") == 1:
            return nn.Linear(layer.in_features // TOWERS, layer.out_features,
                             dtype=layer.weight.dtype)
        return nn.Linear(layer.in_features, layer.out_features // TOWERS,
                         dtype=layer.weight.dtype)
    if isinstance(layer, LocalResponseNorm):   # per-tower windows: one group of half the maps
        return LocalResponseNorm(layer.channels // TOWERS, layer.size, layer.alpha, layer.beta,
                                 layer.k, groups=layer.groups // TOWERS,
                                 alpha_per_term=layer.alpha_per_term,
                                 relu_first=layer.relu_first, backend=layer.backend)
    return copy.deepcopy(layer)


class Tower(nn.Module):
    """One tower of a two-tower `AlexNetPaper`: half of every layer, under the same names."""

    def __init__(self, full: AlexNetPaper, index: int):
        super().__init__()
        if full.features.conv2.groups != TOWERS:
            raise ValueError("only the two-tower network (towers=2, cross_tower=False) splits")
        self.index = index
        self.features = nn.Sequential(OrderedDict(
            (name, _half(name, layer)) for name, layer in full.features.named_children()))
        self.classifier = nn.Sequential(OrderedDict(
            (name, _half(name, layer)) for name, layer in full.classifier.named_children()))
        with torch.no_grad():
            self.load_state_dict({k: tower_piece(k, v, index)
                                  for k, v in full.state_dict().items()})

    def run(self, segment: tuple[str, str, str | None], x: torch.Tensor) -> torch.Tensor:
        """`x` through one segment (part, first layer, the layer it stops before)."""
        part, first, stop = segment
        names = [name for name, _ in getattr(self, part).named_children()]
        for name in names[names.index(first):names.index(stop) if stop else None]:
            x = getattr(getattr(self, part), name)(x)
        return x


def split_forward(towers: list[Tower], images: list[torch.Tensor], exchange) -> torch.Tensor:
    """The network's forward pass, tower by tower: `towers` are the towers this process runs
    (both, or its own), `images` their inputs, `exchange` carries activations between them."""
    def each(segment: tuple[str, str, str | None], inputs: list[torch.Tensor]):
        return [t.run(segment, x) for t, x in zip(towers, inputs, strict=True)]

    xs = each(CONV1_TO_POOL2, images)   # each tower alone
    xs = [torch.flatten(x, 1) for x in each(CONV3_TO_POOL5, exchange.gather(xs))]
    xs = each(FC6, exchange.gather(xs))
    xs = each(FC7, exchange.gather(xs))
    logits = exchange.sum([F.linear(x, t.classifier.fc8.weight)
                           for t, x in zip(towers, xs, strict=True)])
    return logits + towers[0].classifier.fc8.bias


# -- the two forms ----------------------------------------------------------------------------

class TowersOnDevices(nn.Module):
    """One process, tower a on devices[0] and tower b on devices[1]; logits on devices[0]."""

    def __init__(self, full: AlexNetPaper, devices: list[torch.device]):
        super().__init__()
        self.devices = [torch.device(d) for d in devices]
        self.towers = nn.ModuleList(Tower(full, i).to(d) for i, d in enumerate(self.devices))
        # The bias of fc8 is added once, on tower a's device: tower b's copy is never used.
        self.towers[1].classifier.fc8.bias.requires_grad_(False)
        self.exchange = DeviceExchange(self.devices)
        self.model_name = getattr(full, "model_name", "alexnet-paper")
        self.model_options = dict(getattr(full, "model_options", {}))

    def local_towers(self) -> list[Tower]:
        return list(self.towers)

    def gather_pieces(self, items: list[tuple[str, dict[int, torch.Tensor]]]
                      ) -> list[list[torch.Tensor]]:
        return [[by_tower[i] for i in sorted(by_tower)] for _, by_tower in items]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self._seed_other_devices()
        return split_forward(list(self.towers), [x.to(d) for d in self.devices], self.exchange)

    def _seed_other_devices(self) -> None:
        """torch.manual_seed gives every GPU the same seed: reseed tower b's GPU from the CPU
        generator so its dropout masks are not a copy of tower a's."""
        for device in self.devices[1:]:
            if device.type == "cuda" and device != self.devices[0]:
                seed = int(torch.randint(0, 2 ** 62, ()))
                torch.cuda.default_generators[device.index or 0].manual_seed(seed)


class TowerOnRank(Tower):
    """One process per tower: this rank's tower of the pair `group` (its rank there is the
    tower's index). Parameters have the single-device names and half the shapes."""

    def __init__(self, full: AlexNetPaper, group):
        super().__init__(full, torch_dist.get_rank(group))
        self.exchange = RankExchange(group)
        self.model_name = getattr(full, "model_name", "alexnet-paper")
        self.model_options = dict(getattr(full, "model_options", {}))

    def local_towers(self) -> list[Tower]:
        return [self]

    def gather_pieces(self, items: list[tuple[str, dict[int, torch.Tensor]]]
                      ) -> list[list[torch.Tensor]] | None:
        """Every tower's piece of each item, on the pair's first rank (None on the other).
        Both ranks call it with the same items in the same order."""
        group = self.exchange.group
        first = self.index == 0
        out = []
        for name, by_tower in items:
            (piece,) = by_tower.values()
            if split_dim(name) is None:   # both ranks hold it
                out.append([piece])
                continue
            parts = [torch.empty_like(piece) for _ in range(TOWERS)] if first else None
            torch_dist.gather(piece.contiguous(), parts,
                              dst=torch_dist.get_global_rank(group, 0), group=group)
            out.append(parts)
        return out if first else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return split_forward([self], [x], self.exchange)


SplitNet = TowersOnDevices | TowerOnRank


def is_split(model: nn.Module) -> bool:
    return isinstance(model, (TowersOnDevices, TowerOnRank))


def tower_parameters(model: SplitNet) -> Iterator[tuple[str, int, nn.Parameter]]:
    """(single-device name, tower, parameter) of the towers in this process, in the
    single-device order (each name once per local tower)."""
    towers = model.local_towers()
    params = [dict(t.named_parameters()) for t in towers]
    for name in params[0]:
        for tower, own in zip(towers, params, strict=True):
            yield name, tower.index, own[name]


def full_state_dict(model: SplitNet) -> dict[str, torch.Tensor] | None:
    """The single-device state dict. With one tower per rank both ranks of the pair must
    call it; the first gets the dict, the other None."""
    local: dict[str, dict[int, torch.Tensor]] = {}
    for tower in model.local_towers():
        for name, tensor in tower.state_dict().items():
            local.setdefault(name, {})[tower.index] = tensor.detach()
    items = list(local.items())
    pieces = model.gather_pieces(items)
    if pieces is None:
        return None
    return {name: merge_pieces(name, p) for (name, _), p in zip(items, pieces, strict=True)}


def load_full_state_dict(model: SplitNet, state: dict[str, torch.Tensor]) -> None:
    """Load a single-device state dict: each local tower takes its pieces."""
    for tower in model.local_towers():
        tower.load_state_dict({k: tower_piece(k, v, tower.index) for k, v in state.items()})


class SavedWeights:
    """What `checkpoint.save_weights` reads of a model (name, options, state dict), for a
    split network whose single-device state dict has already been gathered."""

    def __init__(self, model: SplitNet, state: dict[str, torch.Tensor]):
        self.model_name, self.model_options = model.model_name, model.model_options
        self._state = state

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state


def split_model(full: AlexNetPaper, *, devices: list[torch.device] | None = None,
                group=None) -> SplitNet:
    """`full`'s towers on `devices` (one process) or this rank's tower of `group`."""
    check_splittable(getattr(full, "model_name", "alexnet-paper"),
                     getattr(full, "model_options", {}))
    if group is not None:
        return TowerOnRank(full, group)
    return TowersOnDevices(full, devices or [torch.device("cpu")] * TOWERS)
