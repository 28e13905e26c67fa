"""The named recipes: each the settings of a published setup, as its differences from
`Config`'s defaults (which are the default recipe, `cifar10`).

`resolve_config(recipe, overrides)` is what `alexnet train` calls: the recipe (default
`cifar10`) with `key=value` overrides applied, validated; `recipe_names()` lists them.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field

from alexnet.config import CUDA_CONVNET_DECAY, Config, apply_overrides
from alexnet.errors import one_of


@dataclass(frozen=True)
class Recipe:
    """A published setup: what it is (`alexnet train --recipes` prints it) and the settings
    in which it differs from `Config`'s defaults."""

    description: str
    settings: dict = field(default_factory=dict)

    def config(self, name: str) -> Config:
        # A copy: model_options is a dict, and every resolved config gets its own.
        return dataclasses.replace(Config(), recipe=name, **copy.deepcopy(self.settings))


# cuda-convnet's own methodology for its CIFAR-10 layer files (see cifar10-11pct): images held
# out for validation until epoch 350, then all of them, lr / 10 at 500 and again at 510.
_CUDA_CONVNET_METHOD = {"fold_in_epoch": 350, "epochs": 520, "lr": 1e-3,
                        "schedule": "multistep", "milestones": (500, 510),
                        "warmup_epochs": 0.0}
# What both ImageNet recipes share: 256x256 stores, 224 crops, 90 epochs, 10 images of each
# class held out, no warm-up, and none of cuda-convnet's CIFAR-10 layer settings.
_IMAGENET = {"model_options": {}, "layer_decay": (), "data_size": 256, "crop": 224,
             "val_per_class": 10, "epochs": 90, "warmup_epochs": 0.0, "eval_batch_size": 128}

RECIPES: dict[str, Recipe] = {
    "cifar10": Recipe(
        """cuda-convnet's "11%" net on CIFAR-10 (paper §3.3) as its files set it up, with a
        modern schedule: the file's initialisation, 0-255 pixels minus the mean image (as the
        paper; at this scale the cross-map norms act, with std-scaled inputs they would barely
        change their inputs), the layer-params' weight decays (none on the convolutions, 0.004
        on local3/local4, 0.01 on fc10), biases 2x lr and no decay, the paper's SGD at lr 0.003
        (3x the file's), batch 128, a cosine schedule over `epochs` after a half-epoch warm-up;
        24x24 random crops and flips; the 10-view test. The default is a short run (minutes on
        a laptop CPU); `epochs=30` is the README's LRN comparison."""),
    "cifar10-fast": Recipe(
        """cuda-convnet's 13% net (no norms, so the input scale is free to choose) trained for
        speed on a CPU, after the 13% file's "13% error on CIFAR-10 in 20 minutes" on a GTX 580:
        inputs scaled to unit variance, PyTorch's initialisation, the paper's SGD at lr 0.05
        (biases 2x, no decay), weight decay 0.001 on local3/local4 and fc10 and none on the
        convolutions, batch 128, 100 cosine epochs after a half-epoch warm-up, 24x24 crops and
        flips, centre-view validation each epoch and the 10-view test at the end.""",
        {"model": "cifar-conv-local-13pct", "model_options": {}, "epochs": 100, "lr": 0.05,
         "weight_decay": 1e-3, "layer_decay": ("features.conv=0",),
         "normalize": "mean-image-std"}),
    "cifar10-11pct": Recipe(
        """cuda-convnet's layers-conv-local-11pct.cfg trained as its files say: init from the
        file (Gaussian initW), 0-255 pixels minus the mean image, the paper's SGD with lr
        (epsW) 0.001 on the mean gradient, biases 0.002 and no decay, momentum 0.9, batch 128,
        weight decay (wc) 0 on conv1/conv2, 0.004 on local3/local4, 0.01 on fc10; 350 epochs
        with images held out for validation, then all 50,000 for 150 more, then lr / 10 for 10
        epochs and / 100 for 10 (520 epochs); 24x24 random crops and flips, 10-view test. The
        file held out batch 5 (10,000 images); here 5,000 (500 per class: the project holds out
        at most a tenth of a class). Written for a GPU: about 25 M images.""",
        _CUDA_CONVNET_METHOD),
    "cifar10-13pct": Recipe(
        """cuda-convnet's layers-conv-local-13pct.cfg (cifar-conv-local-13pct) with the same
        methodology as cifar10-11pct; its layer-params file decays fc10 by 0.004.""",
        {**_CUDA_CONVNET_METHOD, "model": "cifar-conv-local-13pct",
         "layer_decay": CUDA_CONVNET_DECAY["cifar-conv-local-13pct"]}),
    "imagenet-paper": Recipe(
        """The paper (§4-§5): alexnet-paper, batch 128, lr 0.01 inside the velocity, momentum
        0.9, weight decay 5e-4, lr / 10 when validation error stops improving (at most 3
        times), 90 epochs, random 224 crops of the 256 images, flips, PCA lighting 0.1, mean
        image. Biases get 2x lr and no decay, as in the 2012 code (layer-params-145.cfg).""",
        {**_IMAGENET, "model": "alexnet-paper", "lr": 0.01, "weight_decay": 5e-4,
         "schedule": "plateau", "lighting_std": 0.1}),
    "imagenet-torchvision": Recipe(
        """torchvision's reference recipe for `alexnet`: SGD lr 0.01, momentum 0.9, weight decay
        1e-4, lr x 0.1 every 30 epochs, 90 epochs, batch 256, per-channel ImageNet
        normalisation, flips. Crops are random 224 patches of the 256 store (torchvision:
        RandomResizedCrop).""",
        {**_IMAGENET, "model": "alexnet-torchvision", "batch_size": 256, "optimizer": "sgd",
         "lr": 0.01, "weight_decay": 1e-4, "bias_lr_mult": 1.0, "bias_weight_decay": None,
         "schedule": "step", "normalize": "imagenet", "eval_views": "center"}),
}
DEFAULT_RECIPE = "cifar10"


def recipe_names() -> list[str]:
    return list(RECIPES)


def describe_recipe(name: str) -> str:
    return " ".join(RECIPES[name].description.split())


def recipe_summary(name: str) -> str:
    """The recipe in a line: its description's first clause and its number of epochs."""
    first = re.split(r": |; ", describe_recipe(name), maxsplit=1)[0].rstrip(".")
    return f"{first}; {RECIPES[name].config(name).epochs} epochs"


def resolve_config(recipe: str | None = None, overrides: list[str] | None = None) -> Config:
    """The named recipe (default `cifar10`) with `overrides` applied, validated."""
    name = recipe or DEFAULT_RECIPE
    if name not in RECIPES:
        raise one_of("recipe", name, RECIPES)
    return apply_overrides(RECIPES[name].config(name), overrides or []).validate()
