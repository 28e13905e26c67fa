"""A training run's settings: one frozen dataclass, its checks and `key=value` overrides.

Every field can be overridden from the command line (`epochs=2 lr=0.01`), model options with
`model.<option>=value` (`model.lrn=false`). The defaults are the default recipe, `cifar10`;
the other named recipes (`recipes.py`) are their differences from it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from dataclasses import dataclass, field

from alexnet.choices import AMP_MODES, MAX_SIZE, NORMALIZATIONS, OPTIMIZERS, SCHEDULES, VIEWS
from alexnet.errors import UserError, did_you_mean, one_of

# The weight decay (`wc`) of each layer in cuda-convnet's layer-params files for its CIFAR-10
# nets: none on the convolutions, 0.004 on the locally connected layers, and on fc10 0.01
# (11% file) or 0.004 (13% file).
CUDA_CONVNET_DECAY = {
    "cifar-conv-local": ("features.conv=0", "features.local=0.004", "classifier=0.01"),
    "cifar-conv-local-13pct": ("features.conv=0", "features.local=0.004",
                               "classifier=0.004"),
}


@dataclass(frozen=True)
class Config:
    """Everything that decides a training run (the data path and output folder included).
    The defaults are the `cifar10` recipe (its description is in `recipes.py`)."""

    recipe: str = "cifar10"
    # network
    model: str = "cifar-conv-local"
    model_options: dict = field(default_factory=lambda: {"init": "cuda-convnet"})
    init_weights: str | None = None  # weights file, run folder or shipped model to start from
    # data
    data: str | None = None          # prepared store or image folder; None: recipe's default
    data_size: int = 32              # side of the stored images
    val_per_class: int = 500         # held out from the training store, per class, seeded
    fold_in_epoch: int = 0           # from this epoch on the held-out images train too (0: never)
    # optimisation
    epochs: int = 2
    batch_size: int = 128            # global: split evenly across distributed ranks
    optimizer: str = "paper"         # "paper": lr inside the velocity; "sgd": torch.optim.SGD
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 4e-3
    bias_lr_mult: float = 2.0
    bias_weight_decay: float | None = 0.0       # None: same as weight_decay
    # "prefix=decay": weights named prefix* get that decay (`layer_decay_map`)
    layer_decay: tuple[str, ...] = CUDA_CONVNET_DECAY["cifar-conv-local"]
    schedule: str = "cosine"         # constant | step | multistep | cosine | plateau
    warmup_epochs: float = 0.5
    step_size: int = 30
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    plateau_patience: int = 2
    plateau_max_drops: int = 3
    # augmentation and views
    crop: int = 24
    flip: bool = True
    lighting_std: float = 0.0        # the paper's PCA colour noise: 0.1
    cutout: int = 0                  # side of a square zeroed in each crop (0: none; not in the paper)
    label_smoothing: float = 0.0     # mass spread evenly over all classes (not in the paper)
    normalize: str = "mean-image"
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
        """This config, after checking every field (UserError naming the first bad one)."""
        _check_types(self)
        _check_model_options(self)
        for name, valid in [("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                            ("normalize", NORMALIZATIONS), ("amp", AMP_MODES),
                            ("eval_views", VIEWS)]:
            if getattr(self, name) not in valid:
                raise one_of(name, getattr(self, name), valid)
        _check_whole_numbers(self)
        _check_real_numbers(self)
        self.layer_decay_map()
        if self.model_parallel not in (1, 2):
            raise UserError(f"model_parallel must be 1 or 2 (the network has two towers), "
                            f"got {self.model_parallel}")
        if self.model_parallel == 2:
            from alexnet.models.towers import check_splittable  # torch: see _check_model_options

            check_splittable(self.model, self.model_options)
        if self.cutout > self.crop:
            raise UserError(f"cutout={self.cutout} is larger than the crop ({self.crop})")
        if self.crop > self.data_size:
            raise UserError(f"crop={self.crop} is larger than the stored images "
                            f"(data_size={self.data_size})")
        return self

    def layer_decay_map(self) -> dict[str, float]:
        """`layer_decay` as {parameter-name prefix: weight decay} (a copy: the parsed entries
        are kept, so `validate` and the optimiser read one parse)."""
        return dict(self._layer_decays)

    @functools.cached_property
    def _layer_decays(self) -> dict[str, float]:
        # Kept in the instance's __dict__, outside the fields: equality, to_dict and
        # dataclasses.replace (which builds a new instance) never see it.
        return parse_layer_decay(self.layer_decay)

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


def parse_layer_decay(entries: tuple[str, ...]) -> dict[str, float]:
    """`prefix=decay` entries as {prefix: decay}; UserError naming the first that is not of
    that form with a decay >= 0."""
    decays = {}
    for item in entries:
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


def _check_types(config: Config) -> None:
    """Every field holds its declared type (a config read back from a file may not)."""
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        value = getattr(config, f.name)
        if not _has_type(value, hints[f.name]):
            raise UserError(f"setting {f.name}={value!r} is not a valid "
                            f"{getattr(hints[f.name], '__name__', hints[f.name])}")


def _check_model_options(config: Config) -> None:
    """Every model option is one the model has, of its default's type."""
    # Here, not at the top: `alexnet --help` imports the config (the recipes list), and the
    # models import torch (a second and more); only checking a config needs them.
    from alexnet.models import model_spec

    valid_options = model_spec(config.model).options()
    for key, value in config.model_options.items():
        if key not in valid_options:
            close = did_you_mean(key, valid_options).replace("mean ", "mean model.")
            raise UserError(f"unknown option model.{key} for model {config.model!r}{close}; "
                            f"valid options: {', '.join(valid_options)}")
        default = valid_options[key]      # an option takes the type of its default
        if default is not None and not _has_type(value, type(default)) or (
                isinstance(value, float) and not math.isfinite(value)):
            raise UserError(f"model.{key}={value!r} is not a valid "
                            f"{type(default).__name__} (default {default!r})")


def _check_whole_numbers(config: Config) -> None:
    for name, low, high in [("epochs", 1, 100_000), ("batch_size", 1, 2 ** 31 - 1),
                            ("eval_batch_size", 1, 2 ** 31 - 1), ("crop", 1, MAX_SIZE),
                            ("cutout", 0, MAX_SIZE),
                            ("data_size", 1, MAX_SIZE), ("val_per_class", 0, 2 ** 31 - 1),
                            ("fold_in_epoch", 0, 100_000), ("step_size", 1, 100_000),
                            ("plateau_patience", 0, 100_000),
                            ("plateau_max_drops", 0, 1000), ("seed", 0, 2 ** 63 - 1)]:
        value = getattr(config, name)
        if not low <= value <= high:
            raise UserError(f"{name} must be a whole number from {low:,} to {high:,}, "
                            f"got {value}")
    for value in config.milestones:
        if not 1 <= value <= 100_000:
            raise UserError(f"milestones must be epochs from 1 to 100,000, got {value}")
    if config.threads is not None and not 1 <= config.threads <= 4096:
        raise UserError(f"threads must be a whole number from 1 to 4,096, got "
                        f"{config.threads}")


def _check_real_numbers(config: Config) -> None:
    # (name, lowest, highest, whether the lowest itself is excluded)
    for name, low, high, open_low in [
            ("lr", 0.0, math.inf, True), ("momentum", 0.0, 0.999999, False),
            ("weight_decay", 0.0, math.inf, False), ("bias_lr_mult", 0.0, math.inf, False),
            ("bias_weight_decay", 0.0, math.inf, False), ("gamma", 0.0, 1.0, True),
            ("warmup_epochs", 0.0, math.inf, False), ("lighting_std", 0.0, math.inf, False),
            ("label_smoothing", 0.0, 0.999999, False),
            ("checkpoint_minutes", 0.0, math.inf, False)]:
        value = getattr(config, name)
        if value is None:
            continue
        if not (math.isfinite(value) and (value > low if open_low else value >= low)
                and value <= high):
            side = "greater than" if open_low else "at least"
            most = f" and at most {high:g}" if high != math.inf else ""
            raise UserError(f"{name} must be a finite number {side} {low:g}{most}, "
                            f"got {value}")


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
            raise UserError(f"unknown setting {key!r}{did_you_mean(key, valid)}; valid "
                            f"settings: {', '.join(valid)}, model.<option>")
    if changes.get("model", config.model) != config.model:
        from alexnet.models import model_spec  # torch: see _check_model_options

        # Another network: the recipe's options and crop were for the old one (the options
        # these overrides name are the user's, for the new one, and stay).
        options = {k: v for k, v in options.items()
                   if k in given or k not in config.model_options}
        changes.setdefault("crop", model_spec(changes["model"]).input_size)
    return dataclasses.replace(config, **changes, model_options=options)
