"""The named recipes: each a function returning the `Config` of a published setup.

`resolve_config(recipe, overrides)` is what `alexnet train` calls: the recipe (default
`cifar10`) with `key=value` overrides applied, validated; `recipe_names()` lists them.
"""

from __future__ import annotations

import typing

from alexnet.config import Config, apply_overrides
from alexnet.errors import one_of

# The weight decay (`wc`) of each layer in cuda-convnet's layer-params files for its CIFAR-10
# nets: none on the convolutions, 0.004 on the locally connected layers, and on fc10 0.01
# (11% file) or 0.004 (13% file).
CUDA_CONVNET_DECAY = {
    "cifar-conv-local": ("features.conv=0", "features.local=0.004", "classifier=0.01"),
    "cifar-conv-local-13pct": ("features.conv=0", "features.local=0.004",
                               "classifier=0.004"),
}


def _cuda_convnet(recipe: str, model: str) -> Config:
    """cuda-convnet's own methodology for its CIFAR-10 layer files (see `_cifar10_11pct`)."""
    return Config(recipe=recipe, model=model, model_options={"init": "cuda-convnet"},
                  data_size=32, val_per_class=500, fold_in_epoch=350, epochs=520,
                  batch_size=128, optimizer="paper", lr=1e-3, momentum=0.9,
                  weight_decay=4e-3, bias_lr_mult=2.0, bias_weight_decay=0.0,
                  layer_decay=CUDA_CONVNET_DECAY[model], schedule="multistep",
                  milestones=(500, 510), gamma=0.1, crop=24, flip=True, lighting_std=0.0,
                  normalize="mean-image", eval_views="ten")


def _cifar10() -> Config:
    """cuda-convnet's "11%" net on CIFAR-10 (paper §3.3) as its files set it up, with a
    modern schedule: the file's initialisation, 0-255 pixels minus the mean image (as the
    paper; at this scale the cross-map norms act, with std-scaled inputs they would barely
    change their inputs), the layer-params' weight decays (none on the convolutions, 0.004
    on local3/local4, 0.01 on fc10), biases 2x lr and no decay, the paper's SGD at lr 0.003
    (3x the file's), batch 128, a cosine schedule over `epochs` after a half-epoch warm-up;
    24x24 random crops and flips; the 10-view test. The default is a short run (minutes on
    a laptop CPU); `epochs=30` is the README's LRN comparison."""
    return Config(recipe="cifar10", model="cifar-conv-local",
                  model_options={"init": "cuda-convnet"}, data_size=32, val_per_class=500,
                  epochs=2, batch_size=128, optimizer="paper", lr=3e-3, momentum=0.9,
                  weight_decay=4e-3, bias_lr_mult=2.0, bias_weight_decay=0.0,
                  layer_decay=CUDA_CONVNET_DECAY["cifar-conv-local"], schedule="cosine",
                  warmup_epochs=0.5, crop=24, flip=True, lighting_std=0.0,
                  normalize="mean-image", eval_views="ten")


def _cifar10_fast() -> Config:
    """cuda-convnet's 13% net (no norms, so the input scale is free to choose) trained for
    speed on a CPU, after the 13% file's "13% error on CIFAR-10 in 20 minutes" on a GTX 580:
    inputs scaled to unit variance, PyTorch's initialisation, the paper's SGD at lr 0.05
    (biases 2x, no decay), weight decay 0.001 on local3/local4 and fc10 and none on the
    convolutions, batch 128, 100 cosine epochs after a half-epoch warm-up, 24x24 crops and
    flips, centre-view validation each epoch and the 10-view test at the end."""
    return Config(recipe="cifar10-fast", model="cifar-conv-local-13pct", data_size=32,
                  val_per_class=500, epochs=100, batch_size=128, optimizer="paper", lr=0.05,
                  momentum=0.9, weight_decay=1e-3, bias_lr_mult=2.0, bias_weight_decay=0.0,
                  layer_decay=("features.conv=0",), schedule="cosine", warmup_epochs=0.5,
                  crop=24, flip=True, lighting_std=0.0, normalize="mean-image-std",
                  eval_views="ten")


def _cifar10_11pct() -> Config:
    """cuda-convnet's layers-conv-local-11pct.cfg trained as its files say: init from the
    file (Gaussian initW), 0-255 pixels minus the mean image, the paper's SGD with lr
    (epsW) 0.001 on the mean gradient, biases 0.002 and no decay, momentum 0.9, batch 128,
    weight decay (wc) 0 on conv1/conv2, 0.004 on local3/local4, 0.01 on fc10; 350 epochs
    with images held out for validation, then all 50,000 for 150 more, then lr / 10 for 10
    epochs and / 100 for 10 (520 epochs); 24x24 random crops and flips, 10-view test. The
    file held out batch 5 (10,000 images); here 5,000 (500 per class: the project holds out
    at most a tenth of a class). Written for a GPU: about 25 M images."""
    return _cuda_convnet("cifar10-11pct", "cifar-conv-local")


def _cifar10_13pct() -> Config:
    """cuda-convnet's layers-conv-local-13pct.cfg (cifar-conv-local-13pct) with the same
    methodology as cifar10-11pct; its layer-params file decays fc10 by 0.004."""
    return _cuda_convnet("cifar10-13pct", "cifar-conv-local-13pct")


def _imagenet_paper() -> Config:
    """The paper (§4-§5): alexnet-paper, batch 128, lr 0.01 inside the velocity, momentum 0.9,
    weight decay 5e-4, lr / 10 when validation error stops improving (at most 3 times),
    90 epochs, random 224 crops of the 256 images, flips, PCA lighting 0.1, mean image.
    Biases get 2x lr and no decay, as in the 2012 code (layer-params-145.cfg)."""
    return Config(recipe="imagenet-paper", model="alexnet-paper", data_size=256,
                  val_per_class=10, epochs=90, batch_size=128, optimizer="paper", lr=0.01,
                  momentum=0.9, weight_decay=5e-4, bias_lr_mult=2.0, bias_weight_decay=0.0,
                  schedule="plateau", gamma=0.1, plateau_patience=2, plateau_max_drops=3,
                  crop=224, flip=True, lighting_std=0.1, normalize="mean-image",
                  eval_views="ten", eval_batch_size=128, checkpoint_minutes=10.0)


def _imagenet_torchvision() -> Config:
    """torchvision's reference recipe for `alexnet`: SGD lr 0.01, momentum 0.9, weight decay
    1e-4, lr x 0.1 every 30 epochs, 90 epochs, batch 256, per-channel ImageNet normalisation,
    flips. Crops are random 224 patches of the 256 store (torchvision: RandomResizedCrop)."""
    return Config(recipe="imagenet-torchvision", model="alexnet-torchvision", data_size=256,
                  val_per_class=10, epochs=90, batch_size=256, optimizer="sgd", lr=0.01,
                  momentum=0.9, weight_decay=1e-4, schedule="step", step_size=30, gamma=0.1,
                  crop=224, flip=True, lighting_std=0.0, normalize="imagenet",
                  eval_views="center", eval_batch_size=128)


RECIPES: dict[str, typing.Callable[[], Config]] = {
    "cifar10": _cifar10,
    "cifar10-fast": _cifar10_fast,
    "cifar10-11pct": _cifar10_11pct,
    "cifar10-13pct": _cifar10_13pct,
    "imagenet-paper": _imagenet_paper,
    "imagenet-torchvision": _imagenet_torchvision,
}
DEFAULT_RECIPE = "cifar10"


def recipe_names() -> list[str]:
    return list(RECIPES)


def describe_recipe(name: str) -> str:
    return " ".join((RECIPES[name].__doc__ or "").split())


def recipe_summary(name: str) -> str:
    """The recipe in a line: its description's first clause and its number of epochs."""
    import re

    first = re.split(r": |; ", describe_recipe(name), maxsplit=1)[0].rstrip(".")
    return f"{first}; {RECIPES[name]().epochs} epochs"


def resolve_config(recipe: str | None = None, overrides: list[str] | None = None) -> Config:
    """The named recipe (default `cifar10`) with `overrides` applied, validated."""
    name = recipe or DEFAULT_RECIPE
    if name not in RECIPES:
        raise one_of("recipe", name, RECIPES)
    return apply_overrides(RECIPES[name](), overrides or []).validate()
