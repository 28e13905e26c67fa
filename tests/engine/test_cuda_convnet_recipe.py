"""cuda-convnet's CIFAR-10 methodology (recipes cifar10-11pct / cifar10-13pct): the layer-params
files' per-layer learning rates and decays, and folding the held-out batch in."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from alexnet.engine.checkpoint import load_training_state
from alexnet.engine.train import train
from alexnet.recipes import resolve_config

TINY = ["val_per_class=5", "batch_size=16", "eval_views=center", "eval_batch_size=64"]


def treatment_by_shape(state: dict) -> dict[tuple, tuple[float, float]]:
    """Each trained parameter's (lr, weight decay) in the saved optimiser, keyed by its
    shape (unique in these nets)."""
    optimizer = state["optimizer"]
    return {tuple(optimizer["state"][i]["velocity"].shape): (g["lr"], g["weight_decay"])
            for g in optimizer["param_groups"] for i in g["params"]}


def test_a_one_epoch_run_trains_every_bias_at_twice_the_lr_without_decay(tiny_store, tmp_path):
    config = resolve_config("cifar10-11pct", ["epochs=1", *TINY, f"data={tiny_store}"])
    train(config, tmp_path / "run")
    got = treatment_by_shape(load_training_state(tmp_path / "run" / "last.state.pt"))
    for bias in [(64,), (64, 6, 6), (32, 6, 6), (4,)]:       # conv, local3, local4, fc10
        assert got[bias] == (pytest.approx(2e-3), 0.0)
    assert got[(64, 3, 5, 5)] == (pytest.approx(1e-3), 0.0)       # conv1: wc 0
    assert got[(36, 64, 576)] == (pytest.approx(1e-3), 0.004)     # local3
    assert got[(4, 1152)] == (pytest.approx(1e-3), 0.01)          # fc10 of the 11% file


def test_the_13pct_recipe_decays_fc10_as_its_own_file_says():
    assert resolve_config("cifar10-13pct").layer_decay_map() == \
        {"features.conv": 0.0, "features.local": 0.004, "classifier": 0.004}
    assert resolve_config("cifar10-13pct").model == "cifar-conv-local-13pct"


def test_held_out_images_join_training_from_fold_in_epoch(tiny_store, tmp_path):
    from alexnet.engine import distributed
    from alexnet.engine.run import StopFlag, build_run

    config = resolve_config("cifar10-11pct", ["epochs=2", "fold_in_epoch=1", *TINY,
                                              f"data={tiny_store}"])
    run = build_run(config, tmp_path / "built", distributed.DistInfo(), StopFlag())
    assert not run.folded(0) and run.folded(1)
    assert np.array_equal(run.loader(0).indices, run.train_idx)
    assert np.array_equal(run.loader(1).indices, np.arange(len(run.store)))

    summary = train(config, tmp_path / "run")
    assert summary["held_out_trained_from_epoch"] == 2
    assert json.loads((tmp_path / "run" / "final.json").read_text()) == summary
    # Without the fold, nothing is marked.
    plain = train(replace(config, fold_in_epoch=0), tmp_path / "plain")
    assert "held_out_trained_from_epoch" not in plain
