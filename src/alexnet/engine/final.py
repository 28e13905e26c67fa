"""The end of a run: the final evaluation on the held-out split (the recipe's views and the
centre view) and, for CIFAR-10's python folder, its official test split; written to
final.json and reported."""

from __future__ import annotations

import json

import numpy as np

from alexnet import console
from alexnet.engine import distributed
from alexnet.engine import run_layout as layout
from alexnet.engine.evaluate import error_text, views_name
from alexnet.engine.inputs import check_classes, open_test_store, why_none_held_out
from alexnet.engine.run import Run
from alexnet.engine.run_files import write_json
from alexnet.kernels.pointwise import compile_seconds


def finish(run: Run) -> dict:
    """The final evaluation, written to final.json and reported; a finished run re-run
    only reports it."""
    path = run.out / layout.FINAL
    if path.is_file():
        summary = json.loads(path.read_text())
    else:
        summary = {"status": "finished", "epochs": run.config.epochs,
                   "train_images": len(run.train_idx), "held_out_images": len(run.val_idx),
                   "weights": str(run.out / layout.LAST_WEIGHTS),
                   "best_val_top1_error": run.progress.best_top1,
                   "wall_seconds": sum(r["epoch_seconds"] for r in run.progress.history),
                   # paid in this process's first steps, inside the first epoch's time
                   "fused_kernels_compile_seconds": round(compile_seconds(), 1)}
        views = ["center"] + ([run.config.eval_views] if run.config.eval_views != "center"
                              else [])
        if len(run.val_idx):
            summary["held_out"] = {v: run.validate(v) for v in views}
        if run.folded(run.config.epochs - 1):
            summary["held_out_trained_from_epoch"] = run.config.fold_in_epoch + 1
        test = official_test_errors(run, views)
        if test:
            summary["test"] = test
        if run.ddp.is_main:
            write_json(path, summary)
    if run.ddp.is_main:
        report_final(run, summary)
    return summary


def report_final(run: Run, summary: dict) -> None:
    """The final errors, one line per split and views, and where the weights are."""
    if "held_out" not in summary:
        why = why_none_held_out(run.config.val_per_class)
        console.info(f"no images were held out ({why}), so there is no held-out "
                     f"error; evaluate with: alexnet eval {run.out} --data OTHER_IMAGES")
    if "held_out_trained_from_epoch" in summary:
        console.info(f"the held-out images trained from epoch "
                     f"{summary['held_out_trained_from_epoch']} on (fold_in_epoch): their "
                     "errors below are not held-out errors")
    for split, name in (("held_out", "held-out"), ("test", "test")):
        for views, res in summary.get(split, {}).items():
            console.info(f"{name} error ({console.plural(res['images'], 'image')}, "
                         f"{views_name(views)}): {error_text(res, len(run.store.classes))}")
    console.info(f"weights: {summary['weights']}")


def official_test_errors(run: Run, views: list[str]) -> dict:
    """Errors on CIFAR-10's official test split when the run trained from CIFAR-10's
    python folder (reported once, at the end; never used to choose anything)."""
    store = open_test_store(run.config) if run.ddp.is_main else None
    if run.ddp.enabled:   # rank 0 prepares it once, then every rank opens it
        distributed.barrier()
        store = open_test_store(run.config) if not run.ddp.is_main else store
    if store is None:
        return {}
    check_classes(store, run.store.classes, "the training store")
    return {v: run.evaluate(store.images, store.labels, np.arange(len(store)), v)
            for v in views}
