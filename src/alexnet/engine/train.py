"""Training: `train(config, out_dir)`, read from the top down.

    train            the process: its threads, the process group, the run folder's lock
      _run           start, train, finish; run.json says how this start ended
        _start       build the run and restore its saved state (run.py); record the start
        train_epochs epoch after epoch: validate, schedule, checkpoint, log
          train_one_epoch   batch after batch (`train_step`), saving mid-epoch when due
        finish       the paper's 10-view evaluation on the held-out split (final.py)

What a run is made of, and how it is saved and restored, is in `run.py`: `last.state.pt` is
all a resume needs, and re-running with the same folder continues from it exactly
(`resume.py`: which settings may change). The files of a run folder are named in
`run_layout.py`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from alexnet import console
from alexnet.config import Config
from alexnet.data.threads import threads_for
from alexnet.engine import distributed, run_files
from alexnet.engine import run_layout as layout
from alexnet.engine.final import finish
from alexnet.engine.inputs import check_classes
from alexnet.engine.messages import epoch_line, kernels_changed, start_line, stopped
from alexnet.engine.optim import set_lr
from alexnet.engine.resume import load_saved_state
from alexnet.engine.run import Run, StopFlag, build_run
from alexnet.errors import UserError
from alexnet.files import output_lock
from alexnet.kernels.choice import forget_kernels_ran

# Called with the run after every training step: a seam for tests, which slow a run down to
# interrupt it mid-epoch.
STEP_HOOKS: list[Callable[[Run], None]] = []
# `train(..., on_epoch=f)`: f(run) at every epoch boundary the run passes; True ends the run
# there (see `train`).
EpochCallback = Callable[[Run], bool | None]


def train(config: Config, out_dir: str | os.PathLike, resume: bool | None = None,
          on_epoch: EpochCallback | None = None) -> dict:
    """Train (or continue) the run in `out_dir`; returns its summary (also in final.json).

    resume: True requires a saved state, False refuses to continue one, None continues
    when `out_dir` holds one. The summary has "status": "finished" or "stopped".

    on_epoch: called with the run (on the main process) at each epoch boundary, with
    `run.progress.epoch` the epochs done and `run.model` their weights: once before the first
    step of a fresh run (epoch 0, the initial weights) and after every epoch, before that
    epoch's checkpoint is written. A run killed in between trains the epoch again on resume
    and calls again for it, so a callback that records should overwrite by epoch; a resumed
    run does not repeat the boundaries its saved state had passed. When it returns True after
    an epoch, the run ends there as a run of that many epochs would (`epochs` becomes the
    epochs done; its checkpoint, final evaluation and run files say so); a later `train` with
    more epochs continues it.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"the run folder {str(out)!r} is a file; give a folder (new, or "
                        f"holding a run to continue)")
    forget_kernels_ran()          # run.json records what this run's steps run
    ddp = None
    try:
        with (threads_for(config.threads),
              distributed.joined(config.device, config.model_parallel) as ddp,
              # The run folder belongs to this run (its rank 0) until it ends.
              output_lock(out, "run folder") if ddp.is_main else contextlib.nullcontext()):
            return _run(config, out, ddp, resume, on_epoch)
    except RuntimeError as err:
        lost = distributed.lost_peer(err) if ddp is not None and ddp.enabled else None
        if lost is None:
            raise
        raise UserError(f"rank {ddp.rank} lost touch with another process of this run "
                        f"({lost}): it stopped or was killed (its own messages say why); the "
                        f"checkpoints in {str(out)!r} are intact: run the same torchrun "
                        f"command to resume", exit_code=1) from None


def _run(config: Config, out: Path, ddp: distributed.DistInfo, resume: bool | None,
         on_epoch: EpochCallback | None) -> dict:
    """Start (or continue) the run, train it and finish it; its summary. The run is let go
    of on return, while the process group still exists (`distributed.joined`)."""
    run = None
    try:
        with StopFlag() as stop:
            run = _start(config, out, ddp, resume, stop)
            halted = None if run.progress.epoch >= config.epochs \
                else train_epochs(run, on_epoch)
        # Past training the state is saved: a signal now may end the process at once.
        summary = halted or finish(run)
    except BaseException:
        _record_status(run, "stopped")
        raise
    _record_status(run, summary["status"])
    return summary


def _start(config: Config, out: Path, ddp: distributed.DistInfo, resume: bool | None,
           stop: StopFlag) -> Run:
    """The run, built and restored from its saved state when it continues one; its start
    recorded in the run folder and announced."""
    saved = load_saved_state(config, out, resume, warn=ddp.is_main)
    configure_backends(config, ddp.device)
    run = build_run(config, out, ddp, stop, fresh=saved is None)
    if saved is not None:
        state, state_path = saved
        check_classes(run.store, state["classes"], f"the run in {str(out)!r}")
        run.restore(state, state_path)
    if ddp.is_main:
        run.check_space()
    run.last_save = time.monotonic()
    p = run.progress
    if not ddp.is_main:
        return run
    if p.epoch >= config.epochs:
        # Read again, not trained: its config.json and its list of starts stay those of the
        # starts that trained it (an experiment re-run with other threads changes neither).
        console.info(f"the run in {out} has finished its {console.plural(p.epoch, 'epoch')} "
                     f"(pass a larger epochs=N to train on, or a new --out)")
        return run
    out.mkdir(parents=True, exist_ok=True)
    run_files.record_start(out, config.to_dict(),
                           run_files.environment(ddp.world_size, ddp.device), saved is not None)
    if (out / layout.FINAL).is_file():   # trains on past a finished run: stale results
        (out / layout.FINAL).unlink()
    if saved is not None:
        console.info(f"resuming the run in {out} at epoch {p.epoch + 1}, step {p.step}")
    else:
        console.info(f"run folder: {out}")
    console.info(start_line(run))
    return run


def train_epochs(run: Run, on_epoch: EpochCallback | None = None) -> dict | None:
    """Train until the last epoch (None) or a signal (the "stopped" summary)."""
    p, ddp = run.progress, run.ddp
    boundary = on_epoch if on_epoch is not None and ddp.is_main else lambda run: None
    if p.global_step == 0:
        boundary(run)   # the initial weights (a run of no epochs is none: its answer is ignored)
    board = run_files.TensorBoard(run.out, ddp.is_main)
    try:
        while p.epoch < run.config.epochs:
            stats = train_one_epoch(run)
            if stats is None:
                return stopped(run)
            val = run.validate()
            dropped = run.schedule.end_epoch(plateau_target(val, stats))
            row = {"epoch": p.epoch + 1, **stats, "val_top1_error": val.get("top1_error"),
                   "val_top5_error": val.get("top5_error"), "lr_dropped": int(dropped)}
            p.history.append(row)
            p.epoch, p.step, p.sums = p.epoch + 1, 0, {}
            # Once the held-out images train too, `best` follows `last`.
            held_out = bool(val) and not run.folded(p.epoch - 1)
            best = held_out and (p.best_top1 is None or val["top1_error"] < p.best_top1)
            if best:
                p.best_top1 = val["top1_error"]
            # Every rank asks (a collective), since only rank 0 calls back.
            if distributed.any_rank(bool(boundary(run)), ddp.device):
                end_here(run)
            run.save(best=best or not held_out)
            if ddp.is_main:
                run_files.write_metrics(run.out, p.history)
                board.log(row)
                console.info(epoch_line(row, run.config.epochs, len(run.store.classes)))
            if distributed.any_rank(run.stop.signum is not None, ddp.device) and \
                    p.epoch < run.config.epochs:
                return stopped(run)   # signalled during validation: saved just above
    finally:
        board.close()
    return None


def train_one_epoch(run: Run) -> dict | None:
    """Train `run.progress.epoch` from batch `run.progress.step` on; None when stopped by a
    signal (state saved). Returns the epoch's train loss/error, img/s, seconds and lr."""
    cfg, p, device = run.config, run.progress, run.ddp.device
    loader = run.loader(p.epoch)
    steps = len(loader)
    world = run.ddp.data_world   # networks training side by side
    sums = EpochSums(p.sums if (p.sums and run.ddp.is_main) else {}, device)
    check_every = 1 if device.type == "cpu" else 25  # a .item() per step stalls a GPU
    run.train_model.train()
    start, done, lr = time.perf_counter(), 0, cfg.lr
    total = (steps - p.step) * loader.batch_size * world if run.ddp.is_main else None
    with console.progress(total, f"epoch {p.epoch + 1}/{cfg.epochs}", unit="img",
                          enabled=run.ddp.is_main) as bar:
        for images, labels in loader.iterate(p.epoch, start_batch=p.step):
            lr = set_lr(run.optimizer, cfg.lr, run.schedule.factor(p.epoch, p.step / steps))
            # The towers of a pair augment alike (same network input) but drop out apart.
            run.generator.manual_seed(step_seed(cfg.seed, run.ddp.data_rank, p.global_step))
            torch.manual_seed(step_seed(cfg.seed, run.ddp.rank, p.global_step))  # dropout
            x = run.augment(images, run.generator)
            loss, wrong = train_step(run.train_model, run.optimizer, x, labels, run.dtype,
                                     cfg.label_smoothing)
            sums.add(loss, wrong, labels.numel())
            p.step += 1
            p.global_step += 1
            if not run.kernels_noted:
                note_kernels(run)
            done += labels.numel() * world
            if p.step % check_every == 0:
                run.check_finite(sums.bad)
                bar.advance(done - bar.done, loss=f"{loss.item():.3f}", lr=f"{lr:.3g}")
            for hook in STEP_HOOKS:
                hook(run)
            if _save_if_due(run, sums, steps, check_every):
                return None
        if bar.done < done:      # the steps since the last display update
            bar.advance(done - bar.done)
    run.check_finite(sums.bad)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    totals = run.ddp.sum_over_data(torch.stack([sums.loss, sums.wrong.double(),
                                                sums.images.double()]))
    n = max(totals[2].item(), 1.0)
    return {"lr": lr, "train_loss": totals[0].item() / n, "train_top1_error": totals[1].item() / n,
            "images_per_s": done / max(elapsed, 1e-9), "epoch_seconds": elapsed}


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               labels: torch.Tensor, dtype: torch.dtype | None, label_smoothing: float = 0.0
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on a normalised batch x [B,3,c,c]; returns (loss, wrong count) tensors."""
    with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    wrong = (logits.detach().argmax(dim=1) != labels).sum()
    return loss.detach(), wrong


class EpochSums:
    """The epoch's loss, wrong answers and images so far, as tensors on the device (a resumed
    epoch adds up bit for bit like an uninterrupted one); `saved` goes into the state."""

    def __init__(self, saved: dict, device: torch.device):
        self.loss = torch.as_tensor(saved.get("loss", 0.0), dtype=torch.float64).to(device)
        self.wrong = torch.as_tensor(saved.get("wrong", 0), dtype=torch.int64).to(device)
        self.images = torch.as_tensor(saved.get("images", 0), dtype=torch.int64).to(device)
        self.bad = torch.zeros((), dtype=torch.bool, device=device)   # a non-finite loss

    def add(self, loss: torch.Tensor, wrong: torch.Tensor, images: int) -> None:
        self.bad |= ~torch.isfinite(loss)
        self.loss += loss.double() * images
        self.wrong += wrong
        self.images += images

    def saved(self) -> dict:
        return {"loss": self.loss.cpu(), "wrong": self.wrong.cpu(), "images": self.images.cpu()}


def step_seed(seed: int, rank: int, global_step: int) -> int:
    """The seed of one step's randomness on one rank: the same whether or not the run was
    interrupted before the step."""
    return ((seed * 1_000_003 + rank) * 1_000_000_007 + global_step) % (2 ** 63)


def configure_backends(config: Config, device: torch.device) -> None:
    """Seed the global generators and set the backends' speed/determinism switches."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed % 2 ** 32)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = not config.deterministic
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: a few CUDA backward kernels (adaptive pooling) have no deterministic
        # version; they warn instead of stopping the run.
        torch.use_deterministic_algorithms(True, warn_only=True)


def plateau_target(val: dict, stats: dict) -> float:
    """What the plateau rule watches: the validation top-1 error (the paper), or without
    held-out images the training loss. Training top-1 error would mislead there: with many
    classes it sits at 100% for epochs while the network is learning, and the rule would
    divide the lr long before anything has stopped improving."""
    return val["top1_error"] if val else stats["train_loss"]


def _save_if_due(run: Run, sums: EpochSums, steps: int, check_every: int) -> bool:
    """Save the state mid-epoch when a signal asked to stop (then True) or the last save is
    `checkpoint_minutes` old."""
    p = run.progress
    stop = run.stop.signum is not None
    if run.ddp.enabled:   # every rank must stop at the same step; ask all of them
        stop = p.step % check_every == 0 and distributed.any_rank(stop, run.ddp.device)
    due = time.monotonic() - run.last_save >= run.config.checkpoint_minutes * 60
    if stop or (due and p.step < steps):
        run.check_finite(sums.bad)  # never save weights that went non-finite
        p.sums = sums.saved()
        run.save()
    return stop


def note_kernels(run: Run) -> None:
    """After this process's first step: record in run.json which kernels ran, and say so
    when a resumed run runs other kernels than the start before it (its numbers then differ
    slightly from an uninterrupted run's)."""
    run.kernels_noted = True
    if not run.ddp.is_main:
        return
    now = run_files.kernels_in_use()
    before = run_files.record_kernels(run.out, now)
    if before is not None and before.get("ran") != now["ran"]:
        console.info(kernels_changed(before["ran"], now["ran"]))


def end_here(run: Run) -> None:
    """End the run at the epochs it has done (an `on_epoch` callback asked): from here on it is
    a run of that many epochs, in its state, config.json and final evaluation."""
    run.config = replace(run.config, epochs=run.progress.epoch)
    if run.ddp.is_main:
        run_files.write_json(run.out / layout.CONFIG, run.config.to_dict())


def _record_status(run: Run | None, status: str) -> None:
    """run.json's status at the end of this start (rank 0, once the run folder is written)."""
    if run is not None and run.ddp.is_main and (run.out / layout.RUN).is_file():
        run_files.record_status(run.out, status, run.progress.epoch, run.config.epochs)
