"""The model registry: `build_model(name, **options)`, `list_models()`, `model_info(name)`.

Every model exposes `forward_features(x)`, `forward_head(features, pre_logits=False)`, a
`num_classes` option and its `input_size`. A built model remembers how it was built
(`model.model_name`, `model.model_options`) so checkpoints can rebuild it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

from alexnet.errors import UserError, one_of
from alexnet.models.cifar import Cifar4Layer, CifarConvLocal, CifarConvLocal13
from alexnet.models.cifar_towers import CifarTowers
from alexnet.models.layers import LocallyConnected2d, LocalResponseNorm, WithinMapNorm
from alexnet.models.paper import AlexNetPaper
from alexnet.models.torchvision_compat import AlexNetTorchvision


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type[nn.Module]
    summary: str

    @property
    def input_size(self) -> int:
        return self.cls.input_size

    def options(self) -> dict[str, object]:
        """Option name -> default, read from the constructor."""
        params = inspect.signature(self.cls.__init__).parameters
        return {k: p.default for k, p in params.items() if k != "self"}


_REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec for spec in [
        ModelSpec("alexnet-paper", AlexNetPaper,
                  "the paper's two-tower network (Fig. 2): LRN, overlapping pooling, dropout"),
        ModelSpec("alexnet-torchvision", AlexNetTorchvision,
                  "torchvision's single-tower variant, state dicts interchangeable"),
        ModelSpec("cifar-conv-local", CifarConvLocal,
                  "cuda-convnet's 11% CIFAR-10 net (2 conv with cross-map norms, 2 locally "
                  "connected; paper §3.3)"),
        ModelSpec("cifar-conv-local-13pct", CifarConvLocal13,
                  "cuda-convnet's 13% CIFAR-10 net (the 11% net without norms, local3 32 wide)"),
        ModelSpec("cifar-4layer", Cifar4Layer,
                  "cuda-convnet's 18% CIFAR-10 net (3 conv + fc), ReLU or tanh (paper Fig. 1)"),
        ModelSpec("cifar-towers", CifarTowers,
                  "the 11% net as the paper's two towers (conv2, local4 own tower; local3, "
                  "fc10 both; paper §6.1, Fig. 3)"),
    ]
}


def list_models() -> list[str]:
    return list(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise one_of("model", name, _REGISTRY)
    return _REGISTRY[name]


def build_model(name: str, **options) -> nn.Module:
    """Build a registered model; unknown names, options or values raise `UserError`."""
    spec = model_spec(name)
    valid = spec.options()
    for key in options:
        if key not in valid:
            raise UserError(f"unknown option {key!r} for model {name!r}; "
                            f"valid options: {', '.join(valid)}")
    try:
        model = spec.cls(**options)
    except (ValueError, TypeError) as err:
        raise UserError(f"bad option for model {name!r}: {err}") from None
    model.model_name = name
    model.model_options = dict(options)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_flops(model: nn.Module, input_size: int) -> int:
    """Multiply-adds x 2 of the conv, locally connected and linear layers for one image."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.weight[0, 0].numel()
            total += 2 * output.numel() * per_output
        elif isinstance(module, LocallyConnected2d):
            total += 2 * output.numel() * module.weight.shape[-1]
        elif isinstance(module, nn.Linear):
            total += 2 * output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear, LocallyConnected2d))]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, input_size, input_size))
    finally:
        for hook in hooks:
            hook.remove()
    return total


class _NoInitialisation(torch.overrides.TorchFunctionMode):
    """Inside it, the in-place initialisers (`nn.init.*`, `Tensor.normal_`...) leave their
    tensor as it is: a model built in it has the right shapes and uninitialised values, at
    no cost (drawing alexnet-paper's 61 M weights takes a second)."""

    INITIALISERS = frozenset({
        "normal_", "uniform_", "fill_", "zero_", "constant_", "ones_", "zeros_",
        "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
        "xavier_normal_", "orthogonal_", "eye_", "dirac_", "sparse_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in self.INITIALISERS:
            return args[0] if args else next(iter(kwargs.values()))
        return func(*args, **kwargs)


def model_costs(name: str, **options) -> tuple[int, int]:
    """(parameters, forward FLOPs per image at its input size) of a registered model, in a
    fraction of a second: built without initialising its weights, counted with its layers'
    plain reference forms (no compiled kernels: no compiler runs, the counts are the same)."""
    with _NoInitialisation():
        model = build_model(name, **options)
    for module in model.modules():
        if isinstance(module, LocalResponseNorm):
            module.backend = "reference"
        elif isinstance(module, LocallyConnected2d):
            module.backend = "unfold"
    return count_parameters(model), forward_flops(model, model_spec(name).input_size)


__all__ = [
    "AlexNetPaper", "AlexNetTorchvision", "Cifar4Layer", "CifarConvLocal", "CifarConvLocal13",
    "CifarTowers", "LocalResponseNorm",
    "LocallyConnected2d", "ModelSpec", "WithinMapNorm", "build_model", "count_parameters",
    "forward_flops", "list_models", "model_costs", "model_spec",
]
