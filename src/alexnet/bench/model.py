"""Model-step throughput: the path training uses against plain PyTorch, without LRN, and the
hardware's own ceiling, in one run.

A step is forward, cross-entropy, backward and the paper's SGD update on synthetic input
already on the device, so this measures the network alone (the data path is `bench
train`'s job). Rows:

- ours: what `alexnet train` runs (`engine.fast_path`: bf16 autocast where the hardware has
  bf16, channels_last; the project's LRN and locally connected kernels; ReLU after pool and
  inside the norm, as the models are built);
- plain PyTorch: fp32, NCHW, `nn.LocalResponseNorm` per tower after its own ReLU, `F.unfold`
  + `einsum` locally connected layers, each ReLU before its pool (`plain_pytorch`);
- plain PyTorch in ours' dtype and layout: the same, in bf16 autocast and channels_last where
  ours uses them, so what the kernels gain is told apart from what the precision gains;
- no LRN: ours with the LRN layers removed (what LRN costs);
- the ceiling: oneDNN's (or cuDNN's) convolution at the net's conv2 shape, forward and both
  backward products, in ours' dtype and layout, as GFLOP/s; our step's GFLOP/s (3x the
  forward's multiply-adds x 2) as a fraction of it says how close to the hardware the whole
  step runs.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from alexnet.bench import time_interleaved
from alexnet.engine.distributed import pick_device
from alexnet.engine.fast_path import amp_dtype, use_channels_last
from alexnet.engine.optim import PaperSGD, parameter_groups
from alexnet.engine.run_files import machine
from alexnet.engine.train import train_step
from alexnet.kernels.choice import forget_kernels_ran, kernels_ran
from alexnet.kernels.pointwise import compile_seconds
from alexnet.models import build_model, forward_flops, model_spec
from alexnet.models.layers import LocallyConnected2d, LocalResponseNorm


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


def swap_lrn(model: nn.Module, make) -> nn.Module:
    for name, child in model.named_children():
        if isinstance(child, LocalResponseNorm):
            setattr(model, name, make(child))
        else:
            swap_lrn(child, make)
    return model


def plain_order(layers: nn.Sequential) -> nn.Sequential:
    """`layers` as plain PyTorch code would write them: a ReLU module before each norm that
    does its ReLU itself (`relu_first`), and each ReLU before the max-pool it follows."""
    items: list[tuple[str, nn.Module]] = []
    for name, layer in layers.named_children():
        if isinstance(layer, LocalResponseNorm) and layer.relu_first:
            items.append((f"relu_{name}", nn.ReLU(inplace=True)))
        if isinstance(layer, nn.ReLU) and items and isinstance(items[-1][1], nn.MaxPool2d):
            items.insert(len(items) - 1, (name, layer))
            continue
        items.append((name, layer))
    return nn.Sequential(OrderedDict(items))


def plain_pytorch(model: nn.Module) -> nn.Module:
    """`model` with PyTorch's own layers and order: nn.LocalResponseNorm per tower after its
    own ReLU, each ReLU before its pool, unfold locally connected layers (the parameters,
    and what is computed, unchanged)."""
    for layer in model.modules():
        if isinstance(layer, LocallyConnected2d):
            layer.backend = "unfold"
    model.features = plain_order(model.features)
    return swap_lrn(model, TorchLRNPerTower)


PLAIN_LIKE_OURS = "plain PyTorch (ours' dtype and layout)"


def variants(model_name: str) -> dict[str, tuple[nn.Module, bool]]:
    """name -> (model, whether it runs the fast path) for the rows that apply to the model."""
    ours = build_model(model_name)
    rows = {"ours": (ours, True),
            "plain PyTorch (fp32, NCHW)": (plain_pytorch(build_model(model_name)), False),
            PLAIN_LIKE_OURS: (plain_pytorch(build_model(model_name)), True)}
    if any(isinstance(m, LocalResponseNorm) for m in ours.modules()):
        rows["no LRN"] = (build_model(model_name, lrn=False), True)
    return rows


def training_step(model: nn.Module, device: torch.device, compile_model: bool,
                  fast: bool = True):
    """A function (x, y) -> None doing one step of `model` as training does: the paper's SGD
    (biases 2x lr), and with `fast` the fast path's layout and autocast."""
    channels_last = fast and use_channels_last(None, device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    dtype = amp_dtype("auto", device) if fast else None
    model = model.to(device, memory_format=fmt).train()
    optimizer = PaperSGD(parameter_groups(model, 1e-3, 5e-4, bias_lr_mult=2.0), lr=1e-3)
    forward = torch.compile(model) if compile_model else model

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        train_step(forward, optimizer, x.contiguous(memory_format=fmt), y, dtype)

    return step


def synthetic_step(model: nn.Module, batch: int, device: torch.device, compile_model: bool,
                   fast: bool = True):
    """One training step on a fixed random batch already on the device: the model alone."""
    size = model_spec(getattr(model, "model", model).model_name).input_size
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    step = training_step(model, device, compile_model, fast)
    return lambda: step(x, y)


def conv2_shape(model: nn.Module, size: int, batch: int) -> dict:
    """The input and layer of the model's second convolution (its largest in these nets)."""
    seen: dict = {}

    def grab(module, inputs, output):
        seen.setdefault("shape", (tuple(inputs[0].shape), module))

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    hook = convs[1].register_forward_hook(grab)
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, size, size))
    finally:
        hook.remove()
    (_, c, h, w), conv = seen["shape"]
    return {"input": [batch, c, h, w], "weight": list(conv.weight.shape),
            "stride": conv.stride[0], "padding": conv.padding[0], "groups": conv.groups}


def conv_ceiling(shape: dict, device: torch.device) -> tuple[callable, float]:
    """One convolution's forward and two backward products (input, weight) at `shape`, in
    the fast path's dtype and layout: (a step function, its FLOPs)."""
    dtype = amp_dtype("auto", device) or torch.float32
    fmt = torch.channels_last if use_channels_last(None, device) else torch.contiguous_format
    x = torch.randn(shape["input"], device=device, dtype=dtype).contiguous(memory_format=fmt)
    weight = torch.randn(shape["weight"], device=device, dtype=dtype)
    weight = weight.contiguous(memory_format=fmt).requires_grad_()
    x.requires_grad_()
    conv = {k: shape[k] for k in ("stride", "padding", "groups")}

    def step() -> None:
        y = nn.functional.conv2d(x, weight, **conv)
        torch.autograd.grad(y, (x, weight), torch.ones_like(y))

    out = nn.functional.conv2d(x.detach()[:1], weight.detach(), **conv)
    macs_per_image = out.numel() * weight[0].numel()
    return step, 3 * 2 * macs_per_image * shape["input"][0]


def default_batch(model_name: str, device: torch.device) -> int:
    if device.type == "cuda":
        return 256
    return 128 if model_spec(model_name).input_size <= 32 else 16


def bench_model(model_name: str = "alexnet-paper", batch: int | None = None, steps: int = 20,
                warmup: int = 3, compile_model: bool = False, device: str | None = None) -> dict:
    """`steps` timed steps of each row, in interleaved rounds (`bench.time_interleaved`)."""
    device = pick_device(device)
    batch = batch or default_batch(model_name, device)
    size = model_spec(model_name).input_size
    calls = {variant: synthetic_step(model, batch, device, compile_model, fast)
             for variant, (model, fast) in variants(model_name).items()}
    shape = conv2_shape(build_model(model_name), size, batch)
    calls["conv2 ceiling"], conv_flops = conv_ceiling(shape, device)
    seconds = time_interleaved(calls, steps, warmup, device)
    forget_kernels_ran()        # what one step of ours runs, not the other rows
    calls["ours"]()
    ours_ran = kernels_ran()
    dtype = amp_dtype("auto", device)
    ceiling = {**shape, "dtype": str(dtype or torch.float32).removeprefix("torch."),
               "channels_last": use_channels_last(None, device),
               "gflops": conv_flops / seconds.pop("conv2 ceiling") / 1e9}
    rows = [{"variant": variant, "images_per_s": batch / s} for variant, s in seconds.items()]
    rate = {row["variant"]: row["images_per_s"] for row in rows}
    step_flops = 3 * forward_flops(build_model(model_name), size)   # per image
    step_gflops = rate["ours"] * step_flops / 1e9
    ratios = {"ours / plain PyTorch": rate["ours"] / rate["plain PyTorch (fp32, NCHW)"],
              "ours / conv2 ceiling (GFLOP/s)": step_gflops / ceiling["gflops"]}
    ratios[f"ours / {PLAIN_LIKE_OURS}"] = rate["ours"] / rate[PLAIN_LIKE_OURS]
    if "no LRN" in rate:
        ratios["ours / no LRN"] = rate["ours"] / rate["no LRN"]
    return {"benchmark": "model step (forward+backward+SGD)",
            "settings": {"model": model_name, "batch": batch, "steps": steps,
                         "compile": compile_model, "device": str(device),
                         "ours": f"{'bf16' if dtype else 'fp32'}, channels_last="
                                 f"{use_channels_last(None, device)}",
                         "threads": torch.get_num_threads(),
                         "fused_kernels_compile_s": round(compile_seconds(), 1)},
            "environment": machine(), "kernels": ours_ran, "rows": rows,
            "ratios": ratios,
            "step_mflop_per_image": step_flops / 1e6, "step_gflops": step_gflops,
            "ceiling": ceiling,
            "notes": [f"our step: {step_gflops:.0f} GFLOP/s ({step_flops / 1e6:.0f} MFLOP per "
                      f"image); conv2 ceiling {ceiling['input']} x {ceiling['weight']}: "
                      f"{ceiling['gflops']:.0f} GFLOP/s ({ceiling['dtype']})"]}
