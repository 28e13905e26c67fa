"""A training run's parts and state: `build_run` opens the data and builds the model,
optimiser, schedule, loader and augmentation; `Run` saves and restores all of it.

`last.state.pt` (weights, optimiser, schedule, epoch, step, RNG states, history) is all a
resume needs. Randomness that a step uses (crop/flip/lighting, dropout) is seeded from
(seed, rank, global step) (`train.step_seed`), so the same step draws the same numbers
whether or not the run was interrupted before it.
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alexnet.config import Config
from alexnet.console import info, plural
from alexnet.data.augment import TrainAugment
from alexnet.data.loader import StoreLoader
from alexnet.engine import checkpoint as ckpt
from alexnet.engine import distributed
from alexnet.engine import model_parallel as mp
from alexnet.engine import run_layout as layout
from alexnet.engine.evaluate import evaluate
from alexnet.engine.fast_path import amp_dtype, use_channels_last
from alexnet.engine.inputs import open_data, split_record, split_validation
from alexnet.engine.optim import build_optimizer, parameter_groups
from alexnet.engine.schedule import Plateau, Schedule
from alexnet.errors import UserError
from alexnet.files import check_free_space, write_refused
from alexnet.models import build_model, towers


class Diverged(UserError):
    """The loss became NaN or infinite; the last checkpoint on disk is from before it."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=3)


@dataclass
class TrainingProgress:
    """Where the run is; saved in the training state."""

    epoch: int = 0                    # the epoch being trained (0-based)
    step: int = 0                     # batches of it already done
    global_step: int = 0
    best_top1: float | None = None
    history: list = field(default_factory=list)  # one metrics row per finished epoch
    sums: dict = field(default_factory=dict)     # this epoch's loss/error sums so far


class StopFlag:
    """SIGTERM/SIGINT set a flag; the loop finishes its step, saves and leaves."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread: no handlers
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class Run:
    """Everything a training loop needs, built once by `train`."""

    config: Config
    out: Path
    ddp: distributed.DistInfo
    store: object
    preprocessing: object
    train_idx: np.ndarray
    val_idx: np.ndarray
    model: nn.Module            # the plain module (saved, evaluated)
    train_model: nn.Module      # what the loop calls: maybe DDP- and compile-wrapped
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    train_loader: object        # the training split's batches
    folded_loader: object       # all images' batches, from config.fold_in_epoch on (or None)
    augment: object
    generator: torch.Generator
    dtype: torch.dtype | None
    progress: TrainingProgress
    stop: StopFlag
    last_save: float = 0.0
    kernels_noted: bool = False   # run.json says which kernels this process ran

    def folded(self, epoch: int) -> bool:
        """Whether the held-out images train too in `epoch` (cuda-convnet's methodology)."""
        return self.folded_loader is not None and epoch >= self.config.fold_in_epoch

    def loader(self, epoch: int):
        return self.folded_loader if self.folded(epoch) else self.train_loader

    # -- evaluation ----------------------------------------------------------------------

    def evaluate(self, images, labels, indices: np.ndarray, views: str = "center") -> dict:
        """Top-1/top-5 error of the network on `images[indices]` with `views`: the indices
        sharded over the data-parallel networks, the counts summed over them."""
        shard = indices[self.ddp.data_rank::self.ddp.data_world]
        return evaluate(self.model, images, labels, self.preprocessing, views, indices=shard,
                        batch_size=self.config.eval_batch_size, amp_dtype=self.dtype,
                        reduce=self.ddp.sum_over_data,
                        show_progress=self.ddp.is_main and views != "center")

    def validate(self, views: str = "center") -> dict:
        """The held-out split's errors on `views` ({} when nothing is held out)."""
        if len(self.val_idx) == 0:
            return {}
        return self.evaluate(self.store.images, self.store.labels, self.val_idx, views)

    # -- checkpoints ---------------------------------------------------------------------

    def state(self) -> dict:
        p = self.progress
        if towers.is_split(self.model):   # the single-device format: a collective per pair
            model = towers.full_state_dict(self.model)
            optimizer = mp.full_optimizer_state(self.optimizer, self.model)
        else:
            model, optimizer = self.model.state_dict(), self.optimizer.state_dict()
        return {"format": ckpt.STATE_FORMAT, "config": self.config.to_dict(),
                "model": model, "optimizer": optimizer,
                "schedule": self.schedule.state_dict(), "epoch": p.epoch, "step": p.step,
                "global_step": p.global_step, "best_top1": p.best_top1,
                "history": p.history, "sums": p.sums, "classes": list(self.store.classes),
                "rng": ckpt.capture_rng(self.generator)}

    def weights_extra(self) -> dict:
        last = self.progress.history[-1] if self.progress.history else {}
        return {"recipe": self.config.recipe, "config": self.config.to_dict(),
                "store": self.store.fingerprint,
                "split": split_record(self.config, self.train_idx, self.val_idx),
                "class_names": list(self.store.class_names), "epoch": self.progress.epoch,
                "step": self.progress.step, "val_top1_error": last.get("val_top1_error"),
                "val_top5_error": last.get("val_top5_error")}

    def save(self, best: bool = False) -> None:
        """Write last (and best) atomically; only rank 0 writes. The state it replaces is
        kept as last.state.pt.previous, for a resume when the newer one is damaged."""
        self.last_save = time.monotonic()
        split = towers.is_split(self.model)
        # Split towers: both ranks of rank 0's pair gather the pieces, rank 0 writes.
        if not self.ddp.is_main and not (split and self.ddp.data_rank == 0):
            return
        state = self.state()
        if not self.ddp.is_main:
            return
        target = self.out / layout.STATE
        try:
            ckpt.save_training_state(target, state, keep_previous=True)
            kwargs = {"classes": list(self.store.classes), "preprocessing": self.preprocessing,
                      "extra": self.weights_extra()}
            model = towers.SavedWeights(self.model, state["model"]) if split else self.model
            target = self.out / layout.LAST_WEIGHTS
            ckpt.save_weights(target, model, **kwargs)
            if best:
                target = self.out / layout.BEST_WEIGHTS
                ckpt.save_weights(target, model, **kwargs)
        except OSError as err:     # refused by the system: exit 1, as the CLI's OSErrors
            why, remedy = write_refused(err, target)
            raise UserError(f"saving the checkpoint {str(target)!r} failed ({why}); the "
                            f"checkpoints saved before are intact: {remedy} and run the same "
                            f"command to resume", exit_code=1) from None

    def check_space(self) -> None:
        """Refuse to start when the run folder cannot hold the next checkpoints: a folder
        where one goes, or too little free space."""
        for name in layout.CHECKPOINTS:
            if (self.out / name).is_dir():
                raise UserError(f"{str(self.out / name)!r} is a folder, where the run saves "
                                f"its checkpoint {name}; move it out of the way")

        weights = sum(t.numel() * t.element_size() for t in self.model.state_dict().values())
        check_free_space(self.out, checkpoint_space(self.out, weights),
                         f"saving checkpoints in {self.out}")

    def restore(self, state: dict, path: Path | None = None) -> None:
        """Take up a saved training state (see `state`); UserError when it does not fit."""
        try:
            if towers.is_split(self.model):
                towers.load_full_state_dict(self.model, state["model"])
                mp.load_full_optimizer_state(self.optimizer, self.model, state["optimizer"])
            else:
                self.model.load_state_dict(state["model"])
                self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            self.progress = TrainingProgress(epoch=state["epoch"], step=state["step"],
                                     global_step=state["global_step"],
                                     best_top1=state["best_top1"],
                                     history=list(state["history"]), sums=dict(state["sums"]))
            ckpt.restore_rng(state["rng"], self.generator)
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip()] or \
                [type(err).__name__]
            raise UserError(f"the training state {str(path or self.out / layout.STATE)!r} "
                            f"does not fit this run ({' '.join(lines[:2])})") from None

    def check_finite(self, bad: torch.Tensor) -> None:
        if not bool(bad.item()):
            return
        last = self.out / layout.LAST_WEIGHTS
        kept = f"the last good checkpoint is {str(last)!r}" if last.is_file() \
            else "no checkpoint had been written yet"
        raise Diverged(f"training diverged: the loss became NaN or infinite in epoch "
                       f"{self.progress.epoch + 1} near step {self.progress.step}; {kept}; "
                       f"try a smaller lr (now lr={self.config.lr})")


def checkpoint_space(out: Path, weights: int) -> int:
    """Bytes a run folder needs free for its checkpoints, given the network's `weights`
    bytes. At the peak of a save it holds two training states (the last one, kept as
    `.previous`, and the new one), last.safetensors, best.safetensors and a new weights file
    being written; a training state is its existing size, or for a new run the weights and
    one momentum buffer. What the folder already holds of these files is replaced, not
    added to, so it counts as room."""
    state_path = out / layout.STATE
    try:
        state = state_path.stat().st_size
    except OSError:
        state = 2 * weights
    present, seen = 0, set()
    for name in layout.CHECKPOINTS:
        try:
            st = (out / name).stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:     # last and .previous may be one file
            seen.add((st.st_dev, st.st_ino))
            present += st.st_size
    return max(2 * state + 3 * weights - present, 0)


def train_batch_size(config: Config, train_images: int, ddp: distributed.DistInfo) -> int:
    """The global batch: `batch_size`, or, when the training split is smaller than that, all
    of it in one batch (a small folder trains rather than stopping with no full batch)."""
    if train_images >= config.batch_size:
        return config.batch_size
    batch = train_images - train_images % ddp.data_world
    if batch < 1:
        raise UserError(f"the training split holds {plural(train_images, 'image')}, fewer "
                        f"than the {ddp.data_world} processes training on it")
    return batch


def build_run(config: Config, out: Path, ddp: distributed.DistInfo, stop: StopFlag,
              fresh: bool = True) -> Run:
    """Open the data, build the model, optimiser, schedule, loader and augmentation. A
    `fresh` run (not one continued from its saved state) starts from `init_weights`."""
    with distributed.main_rank_first():     # rank 0 prepares or downloads; the others wait
        store = open_data(config, refresh=ddp.is_main)
    train_idx, val_idx = split_validation(store.labels, config.val_per_class, config.seed)
    preprocessing = store.preprocessing(config.crop, config.normalize)
    device = ddp.device
    if config.batch_size % ddp.data_world:
        raise UserError(f"batch_size={config.batch_size} does not split evenly over "
                        f"{ddp.data_world} {'pairs of ' if ddp.towers > 1 else ''}processes")
    model, channels_last = _build_model(config, ddp, len(store.classes), fresh)
    optimizer, schedule = _build_optimizer(config, model)
    images, labels = store.images, store.labels
    if device.type == "cuda" and store.images.nbytes <= 4 * 2 ** 30:
        # A small store (CIFAR-10: 150 MB) lives on the GPU: batches are gathered there.
        images = torch.from_numpy(np.array(store.images)).to(device)
        labels = torch.from_numpy(np.array(store.labels, dtype=np.int64)).to(device)
    # The towers of a pair train on the same images: shards go to networks, not ranks.
    batch = train_batch_size(config, len(train_idx), ddp)

    def loader(indices: np.ndarray) -> StoreLoader:
        return StoreLoader(images, labels, batch // ddp.data_world, indices=indices,
                           shuffle=True, seed=config.seed, rank=ddp.data_rank,
                           world_size=ddp.data_world, drop_last=True, device=device)

    folded = config.fold_in_epoch > 0 and len(val_idx) > 0
    all_idx = np.sort(np.concatenate([train_idx, val_idx]))
    augment = TrainAugment(preprocessing, store.eigvals, store.eigvecs, flip=config.flip,
                           lighting_std=config.lighting_std, channels_last=channels_last,
                           cutout=config.cutout)
    train_model = distributed.wrap_model(model, ddp)
    if config.compile:
        train_model = torch.compile(train_model)
    return Run(config, out, ddp, store, preprocessing, train_idx, val_idx, model, train_model,
               optimizer, schedule, loader(train_idx), loader(all_idx) if folded else None,
               augment, torch.Generator(device=device),
               amp_dtype(config.amp, device), TrainingProgress(), stop)


def _build_model(config: Config, ddp: distributed.DistInfo, classes: int,
                 fresh: bool) -> tuple[nn.Module, bool]:
    """The network on this process's device(s), and whether it is channels_last."""
    asked = config.model_options.get("num_classes", classes)
    if asked != classes:     # the data decides; a different number would be ignored silently
        raise UserError(f"model.num_classes={asked!r}, but the training data has "
                        f"{plural(classes, 'class')}: the network gets one output per class; "
                        f"leave model.num_classes out")
    model = build_model(config.model, **{**config.model_options, "num_classes": classes})
    if fresh and config.init_weights:
        kept = ckpt.start_from_weights(model, config.init_weights)
        if ddp.is_main:
            info(f"weights from {config.init_weights}"
                 + (f"; {', '.join(kept)} keep their own initialisation (other shape)"
                    if kept else ""))
    # Split after building, so the towers start from the single-device network's weights.
    model = mp.build_split(model, config.device, ddp) if config.model_parallel > 1 \
        else model.to(ddp.device)
    channels_last = use_channels_last(config.channels_last, ddp.device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, channels_last


def _build_optimizer(config: Config, model: nn.Module) -> tuple[torch.optim.Optimizer, Schedule]:
    named = mp.SingleDeviceNames(model) if towers.is_split(model) else model
    groups = parameter_groups(named, config.lr, config.weight_decay, config.bias_lr_mult,
                              config.bias_weight_decay, config.layer_decay_map())
    optimizer = build_optimizer(config.optimizer, groups, config.lr, config.momentum,
                                config.weight_decay)
    plateau = Plateau(gamma=config.gamma, patience=config.plateau_patience,
                      max_drops=config.plateau_max_drops) if config.schedule == "plateau" else None
    schedule = Schedule(config.schedule, epochs=config.epochs, gamma=config.gamma,
                        step_size=config.step_size, milestones=tuple(config.milestones),
                        warmup_epochs=config.warmup_epochs, plateau=plateau)
    return optimizer, schedule
