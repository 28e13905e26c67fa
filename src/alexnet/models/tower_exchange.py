"""How the towers of `alexnet-paper` exchange activations (see towers.py), and how much.

`DeviceExchange` copies tensors between the devices of one process; `RankExchange` sends them
between the ranks of a tower pair with `torch.distributed` collectives, whose backward passes
are written out (`_GatherOverRanks`, `_SumOverRanks`). Both count the bytes they send, which
`bytes_per_step` works out from the layer shapes.
"""

from __future__ import annotations

import torch
import torch.distributed as torch_dist
from torch import nn

TOWERS = 2


def exchanged_values(tower: nn.Module, input_size: int) -> dict[str, int]:
    """Values per image one tower sends the other in a forward pass, per exchange, worked out
    from the layer shapes (the backward pass sends the gathers' volume again, not the sum's)."""
    side, values = input_size, {}
    for name, layer in tower.features.named_children():
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p = (v if isinstance(v, int) else v[0]
                       for v in (layer.kernel_size, layer.stride, layer.padding))
            side = (side + 2 * p - k) // s + 1
        if name in ("pool2", "pool5"):
            conv = tower.features.conv2 if name == "pool2" else tower.features.conv5
            values[name] = conv.out_channels * side * side
    return {"conv3 gathers pool2": values["pool2"], "fc6 gathers pool5": values["pool5"],
            "fc7 gathers fc6": tower.classifier.fc6.out_features,
            "fc8 sums partial logits": tower.classifier.fc8.out_features}


def bytes_per_step(tower: nn.Module, input_size: int, batch: int, itemsize: int = 4) -> int:
    """Bytes one tower sends per training step (forward and backward), from the layer shapes."""
    values = exchanged_values(tower, input_size)
    gathers = sum(v for k, v in values.items() if "gathers" in k)
    return batch * itemsize * (2 * gathers + values["fc8 sums partial logits"])


class DeviceExchange:
    """Both towers in this process, on `devices`: tensors are copied between them."""

    def __init__(self, devices: list[torch.device]):
        self.devices = devices
        self.sent_bytes = 0   # by both towers, forward and backward

    def _count_backward(self, out: torch.Tensor, share: float) -> None:
        if out.requires_grad:   # the gradient of the other towers' part goes back to them
            out.register_hook(lambda g: self._add(g.numel() * g.element_size() * share))

    def _add(self, n: float) -> None:
        self.sent_bytes += int(n)

    def gather(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        self.sent_bytes += sum(x.numel() * x.element_size() for x in xs) * (len(xs) - 1)
        outs = [torch.cat([x.to(d) for x in xs], dim=1) for d in self.devices]
        for out in outs:
            self._count_backward(out, (len(xs) - 1) / len(xs))
        return outs

    def sum(self, xs: list[torch.Tensor]) -> torch.Tensor:
        self.sent_bytes += sum(x.numel() * x.element_size() for x in xs[1:])
        out = xs[0] + sum(x.to(self.devices[0]) for x in xs[1:])
        self._count_backward(out, len(xs) - 1)
        return out


class _GatherOverRanks(torch.autograd.Function):
    """The ranks' tensors joined along dim 1 (the towers' channels or neurons, in rank order).
    Backward: each rank receives the other ranks' gradients of its part and sums them with
    its own (an all-to-all: gloo has no reduce-scatter). torch.distributed.nn.functional's
    all_gather is deprecated and its gloo backward fails in a group that excludes rank 0."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        parts = [torch.empty_like(x, memory_format=torch.contiguous_format)
                 for _ in range(torch_dist.get_world_size(group))]
        torch_dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        n = torch_dist.get_world_size(ctx.group)
        # [n, *part]: part j goes to rank j (gloo sends contiguous buffers only)
        send = torch.stack(grad.chunk(n, dim=1)).contiguous()
        received = torch.empty_like(send, memory_format=torch.contiguous_format)
        torch_dist.all_to_all_single(received, send, group=ctx.group)
        return received.sum(dim=0), None


class _SumOverRanks(torch.autograd.Function):
    """All-reduce forward; the gradient passes unchanged: every rank computes the same loss
    from the same sum, so each already holds the whole gradient of its own partial (the
    backward all-reduce of `torch.distributed.nn.functional.all_reduce` would count it twice)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        x = x.clone(memory_format=torch.contiguous_format)
        torch_dist.all_reduce(x, op=torch_dist.ReduceOp.SUM, group=group)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class RankExchange:
    """One tower per rank; `group` holds the ranks of one network (a tower pair)."""

    def __init__(self, group):
        self.group = group
        self.sent_bytes = 0   # by this rank's tower, forward and backward

    def gather(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        (x,) = xs
        self.sent_bytes += x.numel() * x.element_size()
        out = _GatherOverRanks.apply(x, self.group)
        if out.requires_grad:   # its backward sends the other tower the gradient of its part
            out.register_hook(self._count_gradient)
        return [out]

    def _count_gradient(self, grad: torch.Tensor) -> None:
        self.sent_bytes += grad.numel() * grad.element_size() // TOWERS

    def sum(self, xs: list[torch.Tensor]) -> torch.Tensor:
        (x,) = xs
        self.sent_bytes += x.numel() * x.element_size()
        return _SumOverRanks.apply(x, self.group)
