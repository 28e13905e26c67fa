"""Model-step throughput: the project's LRN against `nn.LocalResponseNorm` and no LRN.

A step is forward, cross-entropy, backward and an SGD update on synthetic input already on
the device, so this measures the network alone (the data path is `bench train`'s job).
On CUDA it uses bf16 autocast and channels_last, as training does.
"""

from __future__ import annotations

import torch
from torch import nn

from alexnet.bench import environment, time_steps
from alexnet.models import build_model, model_spec
from alexnet.models.layers import LocalResponseNorm


class TorchLRNPerTower(nn.Module):
    """The standard alternative: `nn.LocalResponseNorm` applied to each tower's channels."""

    def __init__(self, ours: LocalResponseNorm):
        super().__init__()
        self.groups = ours.groups
        self.norm = nn.LocalResponseNorm(ours.size, alpha=ours.term_weight * ours.size,
                                         beta=ours.beta, k=ours.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups == 1:
            return self.norm(x)
        return torch.cat([self.norm(part) for part in x.chunk(self.groups, dim=1)], dim=1)


def swap_lrn(model: nn.Module, make: callable) -> nn.Module:
    for name, child in model.named_children():
        if isinstance(child, LocalResponseNorm):
            setattr(model, name, make(child))
        else:
            swap_lrn(child, make)
    return model


def variants(model_name: str) -> dict[str, nn.Module]:
    """The models to compare: ours, with torch's LRN, without LRN (when the model has LRN)."""
    ours = build_model(model_name)
    if not any(isinstance(m, LocalResponseNorm) for m in ours.modules()):
        return {"ours": ours}
    torch_lrn = swap_lrn(build_model(model_name, **ours.model_options), TorchLRNPerTower)
    no_lrn = swap_lrn(build_model(model_name, **ours.model_options), lambda _: nn.Identity())
    return {"ours": ours, "nn.LocalResponseNorm": torch_lrn, "no LRN": no_lrn}


def training_step(model: nn.Module, device: torch.device, compile_model: bool):
    """A function (x, y) -> None doing one SGD step of `model`, set up as training does:
    channels_last and bf16 autocast on CUDA."""
    cuda = device.type == "cuda"
    fmt = torch.channels_last if cuda else torch.contiguous_format
    model = model.to(device, memory_format=fmt).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    forward = torch.compile(model) if compile_model else model

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(device.type, torch.bfloat16, enabled=cuda):
            loss = nn.functional.cross_entropy(forward(x.contiguous(memory_format=fmt)), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def synthetic_step(model: nn.Module, batch: int, device: torch.device, compile_model: bool):
    """One training step on a fixed random batch already on the device: the model alone."""
    size = model_spec(model.model_name).input_size
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    step = training_step(model, device, compile_model)
    return lambda: step(x, y)


def bench_model(model_name: str = "alexnet-paper", batch: int | None = None, steps: int = 20,
                warmup: int = 3, compile_model: bool = False, device: str | None = None) -> dict:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch = batch or (256 if device.type == "cuda" else 16)
    rows = []
    for variant, model in variants(model_name).items():
        seconds = time_steps(synthetic_step(model, batch, device, compile_model), steps,
                             warmup, device, label=variant)
        rows.append({"variant": variant, "images_per_s": batch / seconds})
    rate = {row["variant"]: row["images_per_s"] for row in rows}
    ratios = {}
    if "no LRN" in rate:
        ratios = {"ours / no LRN": rate["ours"] / rate["no LRN"],
                  "ours / nn.LocalResponseNorm": rate["ours"] / rate["nn.LocalResponseNorm"]}
    return {"benchmark": "model step (forward+backward+SGD)",
            "settings": {"model": model_name, "batch": batch, "steps": steps,
                         "compile": compile_model, "device": str(device),
                         "amp": "bf16" if device.type == "cuda" else "fp32"},
            "environment": environment(), "rows": rows, "ratios": ratios}
