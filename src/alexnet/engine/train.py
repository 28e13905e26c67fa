"""Training: `train(config, out_dir)` and the plain functions it is made of.

One epoch is `train_one_epoch`; validation is `evaluate` on the centre view; the run ends
with the paper's 10-view evaluation on the held-out split. A run folder holds:

    config.json  run.json  metrics.csv  [tensorboard/]  final.json
    last.safetensors  last.state.pt      (every epoch, and every `checkpoint_minutes`)
    last.state.pt.previous                (the state before, if the last one is damaged)
    best.safetensors                      (best validation top-1 so far)

`last.state.pt` is all a resume needs; re-running with the same folder continues from it
exactly. What a run is made of, and how it is saved and restored, is in `run.py`.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from alexnet import console
from alexnet.config import Config
from alexnet.engine import checkpoint as ckpt
from alexnet.engine import distributed as dist
from alexnet.engine.evaluate import evaluate, views_name
from alexnet.engine.fast_path import keep_freed_memory
from alexnet.engine.optim import set_lr
from alexnet.engine.run import (
    STATE_FILE,
    Run,
    StopFlag,
    build_run,
    configure_backends,
    step_seed,
)
from alexnet.errors import UserError
from alexnet.kernels.pointwise import compile_seconds

# Settings that may change when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = {"epochs", "checkpoint_minutes", "eval_batch_size", "data", "compile",
                     "device", "deterministic", "model_parallel", "threads"}


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               labels: torch.Tensor, dtype: torch.dtype | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on a normalised batch x [B,3,c,c]; returns (loss, wrong count) tensors."""
    with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    wrong = (logits.detach().argmax(dim=1) != labels).sum()
    return loss.detach(), wrong


def train_one_epoch(run: Run) -> dict | None:
    """Train `run.progress.epoch` from batch `run.progress.step` on; None when stopped by a
    signal (state saved). Returns the epoch's train loss/error, img/s, seconds and lr."""
    cfg, p, device = run.config, run.progress, run.ddp.device
    loader = run.loader(p.epoch)
    steps = len(loader)
    if steps == 0:   # train_batch_size fits the batch to the split: not reached
        raise UserError(f"the training split ({len(run.train_idx)} images) is smaller than "
                        f"one batch (batch_size={cfg.batch_size})")
    world = run.ddp.data_world   # networks training side by side
    # Sums kept as tensors so a resumed epoch adds up bit for bit like an uninterrupted one.
    sums = p.sums if (p.sums and run.ddp.is_main) else {}
    loss_sum = torch.as_tensor(sums.get("loss", 0.0), dtype=torch.float64).to(device)
    wrong_sum = torch.as_tensor(sums.get("wrong", 0), dtype=torch.int64).to(device)
    seen = torch.as_tensor(sums.get("images", 0), dtype=torch.int64).to(device)
    bad = torch.zeros((), dtype=torch.bool, device=device)
    check_every = 1 if device.type == "cpu" else 25  # a .item() per step stalls a GPU
    run.train_model.train()
    batch_images = loader.batch_size * world
    start, done, lr = time.perf_counter(), 0, cfg.lr
    total = (steps - p.step) * batch_images if run.ddp.is_main else None
    with console.progress(total, f"epoch {p.epoch + 1}/{cfg.epochs}", unit="img",
                          enabled=run.ddp.is_main) as bar:
        for images, labels in loader.iterate(p.epoch, start_batch=p.step):
            lr = set_lr(run.optimizer, cfg.lr, run.schedule.factor(p.epoch, p.step / steps))
            # The towers of a pair augment alike (same network input) but drop out apart.
            run.generator.manual_seed(step_seed(cfg.seed, run.ddp.data_rank, p.global_step))
            torch.manual_seed(step_seed(cfg.seed, run.ddp.rank, p.global_step))  # dropout
            x = run.augment(images, run.generator)
            loss, wrong = train_step(run.train_model, run.optimizer, x, labels, run.dtype)
            bad |= ~torch.isfinite(loss)
            loss_sum += loss.double() * labels.numel()
            wrong_sum += wrong
            seen += labels.numel()
            p.step += 1
            p.global_step += 1
            done += labels.numel() * world
            if p.step % check_every == 0:
                run.check_finite(bad)
                bar.advance(done - bar.done, loss=f"{loss.item():.3f}", lr=f"{lr:.3g}")
            if _debug_sleep:
                time.sleep(_debug_sleep)
            stop = run.stop.signum is not None
            if run.ddp.enabled:   # every rank must stop at the same step; ask all of them
                stop = p.step % check_every == 0 and dist.any_rank(stop, device)
            due = time.monotonic() - run.last_save >= cfg.checkpoint_minutes * 60
            if stop or (due and p.step < steps):
                run.check_finite(bad)  # never save weights that went non-finite
                p.sums = {"loss": loss_sum.cpu(), "wrong": wrong_sum.cpu(),
                          "images": seen.cpu()}
                run.save()
                if stop:
                    return None
        if bar.done < done:      # the steps since the last display update
            bar.advance(done - bar.done)
    run.check_finite(bad)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    totals = run.ddp.sum_over_data(torch.stack([loss_sum, wrong_sum.double(), seen.double()]))
    n = max(totals[2].item(), 1.0)
    return {"lr": lr, "train_loss": totals[0].item() / n, "train_top1_error": totals[1].item() / n,
            "images_per_s": done / max(elapsed, 1e-9), "epoch_seconds": elapsed}


# Seconds to sleep after every step: lets tests kill a run reliably mid-epoch.
_debug_sleep = float(os.environ.get("ALEXNET_DEBUG_STEP_SLEEP", "0") or 0)


def validate(run: Run, views: str = "center") -> dict:
    """Held-out top-1/top-5 error on `views`, the split sharded over ranks and summed."""
    if len(run.val_idx) == 0:
        return {}
    shard = run.val_idx[run.ddp.data_rank::run.ddp.data_world]
    return evaluate(run.model, run.store.images, run.store.labels, run.preprocessing, views,
                    indices=shard, batch_size=run.config.eval_batch_size, amp_dtype=run.dtype,
                    reduce=run.ddp.sum_over_data,
                    show_progress=run.ddp.is_main and views != "center")


def saved_config(out: Path) -> Config | None:
    """The config of the run in `out` if it can be resumed (its training state exists)."""
    found = ckpt.load_latest_state(Path(out) / STATE_FILE, warn=False)  # train() warns
    if found is None:
        return None
    state, path = found
    try:
        return Config.from_dict(state["config"])
    except (TypeError, ValueError) as err:
        raise UserError(f"{str(path)!r} holds settings that are not a valid config "
                        f"({err})") from None


def check_resumable(saved: Config, config: Config, out: Path) -> None:
    changed = [k for k, v in config.to_dict().items() if saved.to_dict().get(k) != v]
    fixed = [k for k in changed if k not in RESUMABLE_CHANGES]
    if fixed:
        raise UserError(f"the run in {str(out)!r} was started with other settings "
                        f"({', '.join(f'{k}={saved.to_dict()[k]!r}' for k in fixed)}); resume "
                        f"it without changing them, or pass a new --out")


def plateau_target(val: dict, stats: dict) -> float:
    """What the plateau rule watches: the validation top-1 error (the paper), or without
    held-out images the training loss. Training top-1 error would mislead there: with many
    classes it sits at 100% for epochs while the network is learning, and the rule would
    divide the lr long before anything has stopped improving."""
    return val["top1_error"] if val else stats["train_loss"]


def train(config: Config, out_dir: str | os.PathLike, resume: bool | None = None) -> dict:
    """Train (or continue) the run in `out_dir`; returns its summary (also in final.json).

    resume: True requires a saved state, False refuses to continue one, None continues
    when `out_dir` holds one. The summary has "status": "finished" or "stopped".
    """
    import contextlib

    from alexnet.files import output_lock

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"the run folder {str(out)!r} is a file; give a folder (new, or "
                        f"holding a run to continue)")
    from alexnet.data.threads import use_threads

    use_threads(config.threads)
    keep_freed_memory()
    ddp = dist.setup(config.device, config.model_parallel)
    try:
        # The run folder belongs to this run (its rank 0) until it ends.
        with output_lock(out, "run folder") if ddp.is_main else contextlib.nullcontext():
            with StopFlag() as stop:
                run, halted = _train(config, out, ddp, resume, stop)
            # Past training the state is saved: a signal now may end the process at once.
            summary = halted or finish(run)
        dist.barrier()  # tearing gloo down while a peer still works aborts that peer
        return summary
    finally:
        dist.cleanup()


def _train(config: Config, out: Path, ddp: dist.DistInfo, resume: bool | None,
           stop: StopFlag) -> tuple[Run, dict | None]:
    """Train until the last epoch (returns (run, None)) or a signal (run, stopped summary)."""
    from alexnet.engine import run_files
    from alexnet.engine.inputs import check_classes

    state = None
    saved = (out / STATE_FILE).is_file() or ckpt.previous_state_path(out / STATE_FILE).is_file()
    if saved and resume is not False:
        state, state_path = ckpt.load_latest_state(out / STATE_FILE, warn=ddp.is_main)
        check_resumable(Config.from_dict(state["config"]), config, out)
    elif resume:
        raise UserError(f"nothing to resume: {str(out)!r} holds no {STATE_FILE}")
    elif saved:
        raise UserError(f"{str(out)!r} already holds a run; resume it or pass a new --out")
    configure_backends(config, ddp.device)
    run = build_run(config, out, ddp, stop)
    if state is not None:
        check_classes(run.store, state["classes"], f"the run in {str(out)!r}")
        run.load(state, state_path)
    if ddp.is_main:
        run.check_space()
    run.last_save = time.monotonic()
    p = run.progress
    if ddp.is_main:
        out.mkdir(parents=True, exist_ok=True)
        run_files.write_json(out / "config.json", config.to_dict())
        run_files.record_start(out, config.to_dict(),
                               run_files.environment(ddp.world_size, ddp.device), state is not None)
        if p.epoch >= config.epochs:
            console.info(f"the run in {out} has finished its {console.plural(p.epoch, 'epoch')} "
                         f"(pass a larger epochs=N to train on, or a new --out)")
            return run, None
        if (out / "final.json").is_file():   # trains on past a finished run: stale results
            (out / "final.json").unlink()
        if state is not None:
            console.info(f"resuming the run in {out} at epoch {p.epoch + 1}, step {p.step}")
        else:
            console.info(f"run folder: {out}")
        console.info(start_line(run))
    board = run_files.TensorBoard(out, ddp.is_main)
    try:
        while p.epoch < config.epochs:
            stats = train_one_epoch(run)
            if stats is None:
                return run, stopped(run)
            val = validate(run)
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
            run.save(best=best or not held_out)
            if ddp.is_main:
                run_files.write_metrics(out, p.history)
                board.log(row)
                console.info(epoch_line(row, config.epochs))
            if dist.any_rank(stop.signum is not None, ddp.device) and p.epoch < config.epochs:
                return run, stopped(run)   # signalled during validation: saved just above
    finally:
        board.close()
    return run, None


def towers_note(run: Run) -> str:
    """Where the towers of a split network run, for the start message."""
    if run.config.model_parallel == 1:
        return ""
    if run.ddp.towers > 1:
        return f"; one tower per process: {run.ddp.data_world} pair(s) of processes"
    return "; towers on " + " and ".join(map(str, run.model.devices))


NONE_HELD_OUT = "no class has the 10 images it takes: at most a tenth of each class is held out"


def start_line(run: Run) -> str:
    """What is trained on what: images, the held-out split, batch, device and threads."""
    from alexnet.engine.inputs import held_out_count

    cfg, ddp = run.config, run.ddp
    labels = np.asarray(run.store.labels)
    class_sizes = [int(n) for n in np.bincount(labels) if n]
    held_per_class = sorted({int(n) for n in np.bincount(labels[run.val_idx]) if n})
    capped = any(held_out_count(n, cfg.val_per_class) < held_out_count(n, cfg.val_per_class, None)
                 for n in class_sizes)
    rule = f"val_per_class={cfg.val_per_class}" + (
        ", at most a tenth of each class" if capped else "")
    if held_per_class:
        each = "-".join(str(n) for n in sorted({held_per_class[0], held_per_class[-1]}))
        held = f"holding out {run.val_idx.size:,} for validation ({each} per class: {rule})"
    elif cfg.val_per_class == 0:
        held = "holding out none (val_per_class=0)"
    else:
        held = f"holding out none ({NONE_HELD_OUT})"
    where = str(ddp.device) if ddp.world_size == 1 else \
        f"{console.plural(ddp.world_size, 'process')} on {ddp.device.type}"
    batch = run.train_loader.batch_size * ddp.data_world
    small = (f"; the training split is smaller than batch_size={cfg.batch_size}, so every "
             f"step trains on all {batch} images") if batch < cfg.batch_size else ""
    return (f"training {cfg.model} for {console.plural(cfg.epochs, 'epoch')} on "
            f"{console.plural(len(run.train_idx), 'image')} of "
            f"{console.plural(len(run.store.classes), 'class')}, {held}; {where}, "
            f"{console.plural(torch.get_num_threads(), 'CPU thread')}{small}{towers_note(run)}")


def stopped(run: Run) -> dict:
    name = signal.Signals(run.stop.signum or signal.SIGTERM).name
    if run.ddp.is_main:
        console.info(f"stopped by {name}; state saved; resume with: alexnet train --out "
                     f"{run.out}")
    return {"status": "stopped", "signal": name, "epoch": run.progress.epoch,
            "step": run.progress.step}


def epoch_line(row: dict, epochs: int) -> str:
    val = "" if row["val_top1_error"] is None else (
        f", val top-1 {100 * row['val_top1_error']:.2f}% top-5 "
        f"{100 * row['val_top5_error']:.2f}% (centre)")
    drop = ", lr / 10" if row["lr_dropped"] else ""
    return (f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f}, train error "
            f"{100 * row['train_top1_error']:.2f}%{val}, {row['images_per_s']:,.0f} img/s, "
            f"lr {row['lr']:.3g}{drop}")


def finish(run: Run) -> dict:
    """The final evaluation on the held-out split (the recipe's views and the centre view),
    written to final.json; a finished run re-run only reports it."""
    from alexnet.engine import run_files

    path = run.out / "final.json"
    if path.is_file():
        import json

        summary = json.loads(path.read_text())
    else:
        summary = {"status": "finished", "epochs": run.config.epochs,
                   "train_images": len(run.train_idx), "held_out_images": len(run.val_idx),
                   "weights": str(run.out / "last.safetensors"),
                   "best_val_top1_error": run.progress.best_top1,
                   "wall_seconds": sum(r["epoch_seconds"] for r in run.progress.history),
                   # paid in this process's first steps, inside the first epoch's time
                   "fused_kernels_compile_seconds": round(compile_seconds(), 1)}
        views = ["center"] + ([run.config.eval_views] if run.config.eval_views != "center"
                              else [])
        if len(run.val_idx):
            summary["held_out"] = {v: validate(run, v) for v in views}
        if run.folded(run.config.epochs - 1):
            summary["held_out_trained_from_epoch"] = run.config.fold_in_epoch + 1
        test = official_test_errors(run, views)
        if test:
            summary["test"] = test
        if run.ddp.is_main:
            run_files.write_json(path, summary)
    if run.ddp.is_main:
        if "held_out" not in summary:
            why = "val_per_class=0" if run.config.val_per_class == 0 else NONE_HELD_OUT
            console.info(f"no images were held out ({why}), so there is no held-out "
                         f"error; evaluate with: alexnet eval {run.out} --data OTHER_IMAGES")
        if "held_out_trained_from_epoch" in summary:
            console.info(f"the held-out images trained from epoch "
                         f"{summary['held_out_trained_from_epoch']} on (fold_in_epoch): their "
                         "errors below are not held-out errors")
        for split, name in (("held_out", "held-out"), ("test", "test")):
            for views, res in summary.get(split, {}).items():
                console.info(f"{name} error ({console.plural(res['images'], 'image')}, "
                             f"{views_name(views)}): top-1 "
                             f"{100 * res['top1_error']:.2f}%, top-5 {100 * res['top5_error']:.2f}%")
        console.info(f"weights: {summary['weights']}")
    return summary


def official_test_errors(run: Run, views: list[str]) -> dict:
    """Errors on CIFAR-10's official test split when the run trained from CIFAR-10's
    python folder (reported once, at the end; never used to choose anything)."""
    from alexnet.engine.inputs import check_classes, open_test_store

    store = open_test_store(run.config) if run.ddp.is_main else None
    if run.ddp.enabled:   # rank 0 prepares it once, then every rank opens it
        dist.barrier()
        store = open_test_store(run.config) if not run.ddp.is_main else store
    if store is None:
        return {}
    check_classes(store, run.store.classes, "the training store")
    shard = np.arange(len(store))[run.ddp.data_rank::run.ddp.data_world]
    return {v: evaluate(run.model, store.images, store.labels, run.preprocessing, v,
                        indices=shard, batch_size=run.config.eval_batch_size,
                        amp_dtype=run.dtype, reduce=run.ddp.sum_over_data,
                        show_progress=run.ddp.is_main and v != "center") for v in views}
