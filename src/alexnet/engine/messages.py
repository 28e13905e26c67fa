"""What training says while it runs: the start line, one line per epoch, the stop."""

from __future__ import annotations

import signal

import numpy as np
import torch

from alexnet import console
from alexnet.engine.inputs import held_out_count, why_none_held_out
from alexnet.engine.run import Run
from alexnet.engine.run_files import resume_command


def towers_note(run: Run) -> str:
    """Where the towers of a split network run, for the start message."""
    if run.config.model_parallel == 1:
        return ""
    if run.ddp.towers > 1:
        return f"; one tower per process: {run.ddp.data_world} pair(s) of processes"
    return "; towers on " + " and ".join(map(str, run.model.devices))


def start_line(run: Run) -> str:
    """What is trained on what: images, the held-out split, batch, device and threads."""
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
    else:
        held = f"holding out none ({why_none_held_out(cfg.val_per_class)})"
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
        console.info(f"stopped by {name}; state saved; resume with: "
                     f"{resume_command(run.out, run.ddp.world_size)}")
    return {"status": "stopped", "signal": name, "epoch": run.progress.epoch,
            "step": run.progress.step}


def epoch_line(row: dict, epochs: int, classes: int) -> str:
    val = ""
    if row["val_top1_error"] is not None:
        top5 = f" top-5 {100 * row['val_top5_error']:.2f}%" if classes > 5 else ""  # else 0
        val = f", val top-1 {100 * row['val_top1_error']:.2f}%{top5} (centre)"
    drop = ", lr / 10" if row["lr_dropped"] else ""
    return (f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f}, train error "
            f"{100 * row['train_top1_error']:.2f}%{val}, {row['images_per_s']:,.0f} img/s, "
            f"lr {row['lr']:.3g}{drop}")


def kernels_changed(before: dict, now: dict) -> str:
    """A resumed run runs other kernel forms than the start before it."""
    changes = [f"{kind} {'+'.join(before.get(kind) or ['none'])} -> "
               f"{'+'.join(now.get(kind) or ['none'])}"
               for kind in sorted({*before, *now}) if before.get(kind) != now.get(kind)]
    return (f"note: this start runs other kernels than the start before it ({'; '.join(changes)}): "
            "the same arithmetic in another order, so the run continues but its numbers will "
            "differ slightly from an uninterrupted run's (run.json records each start's)")
