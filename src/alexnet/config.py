"""A training run's settings: one frozen dataclass, named recipes, `key=value` overrides.

`resolve_config(recipe, overrides)` is what `alexnet train` calls; `recipe_names()` lists the
recipes. Every field can be overridden from the command line (`epochs=2 lr=0.01`), model
options with `model.<option>=value` (`model.lrn=false`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field

from alexnet.errors import UserError, one_of

NORMALIZATIONS = ("mean-image", "mean-image-std", "imagenet")
AMP_MODES = ("auto", "bf16", "none")  # fp16 would need loss scaling; bf16 does not


@dataclass(frozen=True)
class Config:
    """Everything that decides a training run (the data path and output folder included)."""

    recipe: str = "cifar10"
    # network
    model: str = "cifar-conv-local"
    model_options: dict = field(default_factory=dict)
    # data
    data: str | None = None          # prepared store or image folder; None: recipe's default
    data_size: int = 32              # side of the stored images
    val_per_class: int = 500         # held out from the training store, per class, seeded
    fold_in_epoch: int = 0           # from this epoch on the held-out images train too (0: never)
    # optimisation
    epochs: int = 2
    batch_size: int = 128            # global: split evenly across distributed ranks
    optimizer: str = "paper"         # "paper": lr inside the velocity; "sgd": torch.optim.SGD
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    bias_lr_mult: float = 1.0
    bias_weight_decay: float | None = None      # None: same as weight_decay
    layer_decay: tuple[str, ...] = ()  # "prefix=decay": weights named prefix* get that decay
    schedule: str = "cosine"         # constant | step | multistep | cosine | plateau
    warmup_epochs: float = 0.0
    step_size: int = 30
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    plateau_patience: int = 2
    plateau_max_drops: int = 3
    # augmentation and views
    crop: int = 24
    flip: bool = True
    lighting_std: float = 0.0        # the paper's PCA colour noise: 0.1
    normalize: str = "mean-image-std"
    eval_views: str = "ten"          # the final evaluation; per-epoch validation is centre-only
    eval_batch_size: int = 500
    # execution
    seed: int = 0
    deterministic: bool = False
    compile: bool = False
    channels_last: bool | None = None   # None (auto): on CUDA and CPUs
    amp: str = "auto"                   # auto: bf16 on CUDA and on CPUs with native bf16
    device: str = "auto"
    model_parallel: int = 1             # 2: alexnet-paper's towers on two devices or ranks
    threads: int | None = None          # torch's CPU threads; None: free cores (data/threads.py)
    checkpoint_minutes: float = 10.0    # also save `last` mid-epoch this often (0: every step)

    def validate(self) -> Config:
        from alexnet.data.store import MAX_SIZE
        from alexnet.engine.evaluate import VIEWS
        from alexnet.engine.optim import OPTIMIZERS
        from alexnet.engine.schedule import SCHEDULES
        from alexnet.models import model_spec

        _check_types(self)
        valid_options = model_spec(self.model).options()
        for key, value in self.model_options.items():
            if key not in valid_options:
                raise UserError(f"unknown option model.{key} for model {self.model!r}; "
                                f"valid options: {', '.join(valid_options)}")
            default = valid_options[key]      # an option takes the type of its default
            if default is not None and not _has_type(value, type(default)) or (
                    isinstance(value, float) and not math.isfinite(value)):
                raise UserError(f"model.{key}={value!r} is not a valid "
                                f"{type(default).__name__} (default {default!r})")
        for name, value, valid in [("optimizer", self.optimizer, OPTIMIZERS),
                                   ("schedule", self.schedule, SCHEDULES),
                                   ("normalize", self.normalize, NORMALIZATIONS),
                                   ("amp", self.amp, AMP_MODES),
                                   ("eval_views", self.eval_views, VIEWS)]:
            if value not in valid:
                raise one_of(name, value, valid)
        for name, low, high in [("epochs", 1, 100_000), ("batch_size", 1, 2 ** 31 - 1),
                                ("eval_batch_size", 1, 2 ** 31 - 1), ("crop", 1, MAX_SIZE),
                                ("data_size", 1, MAX_SIZE), ("val_per_class", 0, 2 ** 31 - 1),
                                ("fold_in_epoch", 0, 100_000), ("step_size", 1, 100_000),
                                ("plateau_patience", 0, 100_000),
                                ("plateau_max_drops", 0, 1000), ("seed", 0, 2 ** 63 - 1)]:
            value = getattr(self, name)
            if not low <= value <= high:
                raise UserError(f"{name} must be a whole number from {low:,} to {high:,}, "
                                f"got {value}")
        for value in self.milestones:
            if not 1 <= value <= 100_000:
                raise UserError(f"milestones must be epochs from 1 to 100,000, got {value}")
        # (name, lowest, highest, whether the lowest itself is excluded)
        for name, low, high, open_low in [
                ("lr", 0.0, math.inf, True), ("momentum", 0.0, 0.999999, False),
                ("weight_decay", 0.0, math.inf, False), ("bias_lr_mult", 0.0, math.inf, False),
                ("bias_weight_decay", 0.0, math.inf, False), ("gamma", 0.0, 1.0, True),
                ("warmup_epochs", 0.0, math.inf, False), ("lighting_std", 0.0, math.inf, False),
                ("checkpoint_minutes", 0.0, math.inf, False)]:
            value = getattr(self, name)
            if value is None:
                continue
            if not (math.isfinite(value) and (value > low if open_low else value >= low)
                    and value <= high):
                side = "greater than" if open_low else "at least"
                most = f" and at most {high:g}" if high != math.inf else ""
                raise UserError(f"{name} must be a finite number {side} {low:g}{most}, "
                                f"got {value}")
        if self.threads is not None and not 1 <= self.threads <= 4096:
            raise UserError(f"threads must be a whole number from 1 to 4,096, got "
                            f"{self.threads}")
        self.layer_decay_map()
        if self.model_parallel not in (1, 2):
            raise UserError(f"model_parallel must be 1 or 2 (the network has two towers), "
                            f"got {self.model_parallel}")
        if self.model_parallel == 2:
            from alexnet.models.towers import check_splittable

            check_splittable(self.model, self.model_options)
        if self.crop > self.data_size:
            raise UserError(f"crop={self.crop} is larger than the stored images "
                            f"(data_size={self.data_size})")
        return self

    def layer_decay_map(self) -> dict[str, float]:
        """`layer_decay` as {parameter-name prefix: weight decay}."""
        decays = {}
        for item in self.layer_decay:
            prefix, _, text = item.partition("=")
            try:
                decay = float(text)
            except ValueError:
                decay = math.nan
            if not prefix.strip() or not decay >= 0:   # also refuses nan
                raise UserError(f"layer_decay entry {item!r} is not of the form "
                                f"prefix=decay with a decay >= 0 (e.g. classifier=0.01)")
            decays[prefix.strip()] = decay
        return decays

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Config:
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in values.items() if k in names}
        for key in ("layer_decay", "milestones"):
            if key in kept and kept[key] is not None:
                kept[key] = tuple(kept[key])
        return cls(**kept)


def _check_types(config: Config) -> None:
    """Every field holds its declared type (a config read back from a file may not)."""
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        value = getattr(config, f.name)
        if not _has_type(value, hints[f.name]):
            raise UserError(f"setting {f.name}={value!r} is not a valid "
                            f"{getattr(hints[f.name], '__name__', hints[f.name])}")


def _has_type(value, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, a) for a in args)
    if origin is tuple:
        return isinstance(value, tuple) and all(_has_type(v, args[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


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
    a laptop CPU); `epochs=100` is what the README's results use."""
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


def _parse_scalar(text: str):
    """A model option's value: JSON when it parses (true, 3, 0.5, "x"), else the string."""
    lowered = text.lower()
    if lowered in ("true", "false", "null", "none"):
        return {"true": True, "false": False}.get(lowered)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _cast(key: str, text: str, hint):
    """Cast an override's text to the field type `hint` (int, float, bool, str, tuples, X|None)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null", "auto", ""):
            return None
        hint = next(a for a in args if a is not type(None))
        return _cast(key, text, hint)
    if origin is tuple:
        return tuple(_cast(key, part.strip(), args[0]) for part in text.split(",") if part.strip())
    try:
        if hint is bool:
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
    except ValueError:
        raise UserError(f"{key}={text!r} is not a valid {hint.__name__}") from None
    return text


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Apply `key=value` strings; unknown keys raise UserError listing the valid ones."""
    hints = typing.get_type_hints(Config)
    valid = [f.name for f in dataclasses.fields(Config) if f.name not in ("recipe", "model_options")]
    changes: dict = {}
    options = dict(config.model_options)
    given: set[str] = set()                     # model options set by these overrides
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"override {item!r} is not of the form key=value")
        if key.startswith("model."):
            options[key[len("model."):]] = _parse_scalar(text)
            given.add(key[len("model."):])
        elif key in valid:
            changes[key] = _cast(key, text.strip(), hints[key])
        else:
            raise UserError(f"unknown setting {key!r}; valid settings: {', '.join(valid)}, "
                            f"model.<option>")
    if changes.get("model", config.model) != config.model:
        from alexnet.models import model_spec

        # Another network: the recipe's options and crop were for the old one (the options
        # these overrides name are the user's, for the new one, and stay).
        options = {k: v for k, v in options.items()
                   if k in given or k not in config.model_options}
        changes.setdefault("crop", model_spec(changes["model"]).input_size)
    return dataclasses.replace(config, **changes, model_options=options)


def resolve_config(recipe: str | None = None, overrides: list[str] | None = None) -> Config:
    """The named recipe (default `cifar10`) with `overrides` applied, validated."""
    name = recipe or DEFAULT_RECIPE
    if name not in RECIPES:
        raise one_of("recipe", name, RECIPES)
    return apply_overrides(RECIPES[name](), overrides or []).validate()
