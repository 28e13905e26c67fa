"""What every experiment needs: its data as a store, runs trained by the engine, results.

Experiments train with `alexnet.engine.train.train`, the same code as `alexnet train`, so
every number they report can be reproduced with that command and the printed overrides.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from alexnet import console
from alexnet.config import Config, apply_overrides
from alexnet.data import ensure_store, prepare_store
from alexnet.engine import run_layout as layout
from alexnet.engine import train as engine_train  # train() looked up per call: tests fake it
from alexnet.engine.run_files import read_metrics_rows
from alexnet.errors import UserError
from alexnet.files import atomic_write_json
from alexnet.recipes import resolve_config


def experiment_store(data: str, out: Path, size: int, per_class: int | None) -> str:
    """The data an experiment trains on: `data` itself, or a `size` x `size` store of the
    first `per_class` images of each class of it, made once in `out/subset-<n>[-<size>]`.
    The experiments' images are CIFAR-10's 32x32: the subset is read from the 32x32 store
    and prepared at `size` like any image (upscaled for the ImageNet recipe's 256)."""
    from PIL import Image

    if not per_class:
        return data
    store_path = out / (f"subset-{per_class}" + ("" if size == 32 else f"-{size}"))
    if not store_path.exists():
        store = ensure_store(data, 32)
        folder = out / f"subset-{per_class}-images"
        for label, name in enumerate(store.classes):
            (folder / name).mkdir(parents=True, exist_ok=True)
            for index in np.flatnonzero(store.labels == label)[:per_class]:
                Image.fromarray(np.asarray(store.images[index])).save(
                    folder / name / f"{index:06d}.png")
        prepare_store(folder, store_path, size=size, progress=False)
    return str(store_path)


def make_config(recipe: str, data: str, overrides: list[str], **fields) -> Config:
    """The recipe with the experiment's fields, then the user's overrides on top. The held-out
    images stay out for the whole run, whatever the recipe's fold_in_epoch: the experiments
    compare their errors, which training on them would make training errors."""
    config = replace(resolve_config(recipe, []), data=data, fold_in_epoch=0, **fields)
    config = apply_overrides(config, overrides).validate()
    if config.fold_in_epoch and config.val_per_class:
        raise UserError(f"fold_in_epoch={config.fold_in_epoch} would train on the held-out "
                        f"images whose errors an experiment compares; leave it out (the "
                        f"experiments keep them out for the whole run)")
    return config


def held_out_kept_note(recipe: str) -> str | None:
    """What an experiment says when its recipe would train on the held-out images late."""
    fold_in = resolve_config(recipe, []).fold_in_epoch
    if not fold_in:
        return None
    return (f"note: recipe {recipe} trains on its held-out images from epoch {fold_in + 1} "
            f"(fold_in_epoch={fold_in}); this experiment keeps them out for every epoch, "
            f"since it compares their errors")


def train_until(config: Config, out: Path, done=lambda history: False) -> list[dict]:
    """Train the run in `out` (continuing it) until `done(history)` after an epoch, or
    `config.epochs`; returns the per-epoch history. Re-running continues where it stopped.
    One `train` call: `done` is its epoch callback, and ends the run where it holds."""
    history = read_history(out)
    if len(history) < config.epochs and not done(history):
        summary = engine_train.train(config, out, on_epoch=lambda run: done(run.progress.history))
        if summary.get("status") == "stopped":
            raise KeyboardInterrupt
        history = read_history(out)
    return history


def read_history(out: Path) -> list[dict]:
    """The per-epoch rows of the run's metrics.csv (numbers as floats), [] for a new run."""
    return read_metrics_rows(out / layout.METRICS)


def final_results(out: Path) -> dict:
    return json.loads((out / layout.FINAL).read_text())


def mean_and_spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (None for a single value: there is no spread to
    measure) and range of `values`, rounded to 6 decimals (0.0001 percentage points)."""
    array = np.asarray(values, dtype=np.float64)
    std = round(float(array.std(ddof=1)), 6) if len(array) > 1 else None
    return {"mean": round(float(array.mean()), 6), "std": std,
            "min": round(float(array.min()), 6), "max": round(float(array.max()), 6),
            "n": len(array)}


def save_results(out: Path, results: dict) -> Path:
    path = out / "results.json"
    atomic_write_json(path, results, indent=2, default=str)
    console.info(f"results: {path}")
    return path


def command_line(config: Config, out: Path) -> str:
    """The `alexnet train` invocation that reproduces one of the experiment's runs."""
    base = resolve_config(config.recipe, []).to_dict()
    changed = [f"{k}={_format(v)}" for k, v in config.to_dict().items()
               if k not in ("recipe", "data", "model_options") and base.get(k) != v]
    changed += [f"model.{k}={_format(v)}" for k, v in config.model_options.items()]
    return (f"alexnet train --recipe {config.recipe} --data {config.data} --out {out} "
            + " ".join(changed)).strip()


def _format(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)
