"""The paper's SGD (§5) and the parameter groups of the 2012 code.

The paper's update keeps the learning rate inside the velocity:

    v <- momentum * v - weight_decay * lr * w - lr * grad
    w <- w + v

PyTorch's `torch.optim.SGD` instead accumulates raw gradients and multiplies the velocity by
the current lr (v <- m v + grad + wd w; w <- w - lr v). The two agree while the lr is constant;
after an lr drop the paper's velocity still carries steps taken at the old lr, PyTorch's
rescales them at once. The paper's rule is what the published runs used.
"""

from __future__ import annotations

import torch
from torch import nn

from alexnet.choices import OPTIMIZERS
from alexnet.errors import one_of


class PaperSGD(torch.optim.Optimizer):
    """SGD with momentum and weight decay exactly as in Krizhevsky et al. 2012, §5.

    Per-group options: lr, momentum, weight_decay. State per parameter: `velocity`.
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 5e-4):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"lr, momentum and weight_decay must be >= 0, got "
                             f"{lr}, {momentum}, {weight_decay}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if "velocity" not in self.state[p]:
                    self.state[p]["velocity"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format)
            if not params:
                continue
            # One fused call per operation for the whole group (same arithmetic, in the
            # same order, as a loop over the parameters).
            velocity = [self.state[p]["velocity"] for p in params]
            torch._foreach_mul_(velocity, momentum)
            if decay:
                torch._foreach_add_(velocity, params, alpha=-decay * lr)
            torch._foreach_add_(velocity, [p.grad for p in params], alpha=-lr)
            torch._foreach_add_(params, velocity)
        return loss


def is_bias(name: str) -> bool:
    """A bias by what it is (the parameter's own name), whatever its shape: the locally
    connected layers' unshared biases are [C, H, W]."""
    return name.rsplit(".", 1)[-1] == "bias"


def parameter_groups(model: nn.Module, lr: float, weight_decay: float,
                     bias_lr_mult: float = 1.0, bias_weight_decay: float | None = None,
                     layer_decay: dict[str, float] | None = None) -> list[dict]:
    """Split parameters into groups for an optimiser.

    Biases get `bias_lr_mult` x lr and `bias_weight_decay` (default: same as the weights);
    the 2012 code and cuda-convnet used 2x lr and no decay for every bias. A weight whose
    name starts with a prefix of `layer_decay` gets that prefix's decay (the longest prefix
    wins), the others `weight_decay`: cuda-convnet's layer-params files give each layer its
    own (`wc`). Each group records `lr_mult` so schedules can scale `lr` per group.
    """
    bias_decay = weight_decay if bias_weight_decay is None else bias_weight_decay
    layer_decay = layer_decay or {}
    buckets: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if is_bias(name):
            key = (bias_lr_mult, bias_decay)
        else:
            prefixes = [prefix for prefix in layer_decay if name.startswith(prefix)]
            decay = layer_decay[max(prefixes, key=len)] if prefixes else weight_decay
            key = (1.0, decay)
        buckets.setdefault(key, []).append(p)
    return [{"params": params, "lr": lr * mult, "lr_mult": mult, "weight_decay": decay}
            for (mult, decay), params in buckets.items()]


def build_optimizer(kind: str, groups: list[dict], lr: float, momentum: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    """"paper": `PaperSGD`; "sgd": PyTorch's SGD (torchvision's reference recipe)."""
    if kind == "paper":
        return PaperSGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise one_of("optimizer", kind, OPTIMIZERS)


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> float:
    """Set every group's lr to base_lr x factor x its lr_mult; returns base_lr x factor."""
    lr = base_lr * factor
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
    return lr
