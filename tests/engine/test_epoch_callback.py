"""`train(..., on_epoch=f)`: f sees the initial weights and every finished epoch, once each,
a resumed run does not repeat the boundaries it had passed, and f returning True ends the
run at that epoch."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from alexnet.engine.run_files import read_metrics_rows
from alexnet.engine.train import train
from alexnet.recipes import resolve_config

SETTINGS = ["val_per_class=4", "batch_size=32", "eval_batch_size=64", "eval_views=center",
            "threads=1", "model=cifar-towers"]


def recorder(calls: list):
    def record(run) -> None:
        calls.append((run.progress.epoch, len(run.progress.history),
                      run.model.features.conv1.weight.detach().clone()))
    return record


def test_on_epoch_sees_the_initial_weights_and_each_epoch(tiny_store, tmp_path):
    out, calls = tmp_path / "run", []
    config = resolve_config("cifar10", [*SETTINGS, f"data={tiny_store}", "epochs=2"])
    train(config, out, on_epoch=recorder(calls))
    assert [(epoch, rows) for epoch, rows, _ in calls] == [(0, 0), (1, 1), (2, 2)]
    assert not torch.equal(calls[0][2], calls[1][2])           # the weights it saw trained
    saved = load_file(out / "last.safetensors")["features.conv1.weight"]
    assert torch.equal(saved, calls[-1][2].contiguous())       # the last call saw the saved ones
    # Training on past the finished run calls for the new epoch only.
    more = []
    train(resolve_config("cifar10", [*SETTINGS, f"data={tiny_store}", "epochs=3"]), out,
          on_epoch=recorder(more))
    assert [(epoch, rows) for epoch, rows, _ in more] == [(3, 3)]
    # A finished run re-run calls nothing.
    again = []
    train(resolve_config("cifar10", [*SETTINGS, f"data={tiny_store}", "epochs=3"]), out,
          on_epoch=recorder(again))
    assert again == []


def test_on_epoch_returning_true_ends_the_run_there(tiny_store, tmp_path):
    """An experiment's stopping rule: the run ends as a run of the epochs done (its state,
    config.json, run.json and final.json say so); a later call with more epochs continues."""
    out, calls = tmp_path / "run", []

    def stop_after_one(run) -> bool:
        calls.append(run.progress.epoch)
        return run.progress.epoch == 1

    summary = train(resolve_config("cifar10", [*SETTINGS, f"data={tiny_store}", "epochs=3"]),
                    out, on_epoch=stop_after_one)
    assert calls == [0, 1] and summary["status"] == "finished" and summary["epochs"] == 1
    for name in ("config.json", "final.json", "run.json"):
        assert json.loads((out / name).read_text())["epochs"] == 1, name
    assert len(read_metrics_rows(out / "metrics.csv")) == 1
    more = []
    train(resolve_config("cifar10", [*SETTINGS, f"data={tiny_store}", "epochs=2"]), out,
          on_epoch=recorder(more))
    assert [(epoch, rows) for epoch, rows, _ in more] == [(2, 2)]
