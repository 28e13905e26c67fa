"""The towers on two gloo ranks (`model_parallel=2`): exact against one device, and training
with them (2 ranks = one pair, 4 ranks = two pairs) ends where one device ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers.images import image_folder
from helpers.paths import REPO
from helpers.runs import alexnet_env, run_alexnet, torchrun

pytestmark = pytest.mark.numerics

# No augmentation and no dropout, so every form sees the same inputs and computes the same
# function; 12 images of 4 classes, 1 per class held out: 2 steps of 4 images.
SETTINGS = ["--recipe", "imagenet-paper", "data_size=224", "flip=false", "lighting_std=0",
            "model.dropout=0", "epochs=1", "batch_size=4", "val_per_class=1",
            "eval_views=center", "eval_batch_size=8", "lr=0.001", "amp=none"]
# Training runs in float32 (there is no float64 training), where summation order differs (the
# split sums fc8 in halves; conv kernels block differently) and the randomly initialised
# network amplifies rounding: a gradient can differ by a few percent between two kernels'
# orders (see tests/models/test_towers.py). Each weight's difference from one device is
# therefore bounded relative to how far that weight moved in training: a wiring mistake moves
# it by about its whole movement; rounding moved conv1/conv2's biases by 2.8% of theirs on an
# AMX Xeon (the largest share), and other CPUs order their sums differently again.
MOVEMENT_SHARE = 0.25
EXACT = 1e-10         # the float64 comparison of split_check.py (why: test_towers.py)


def test_split_over_two_gloo_ranks_equals_one_device(tmp_path):
    """Logits, loss and gradients of the split network equal the single-device network's
    with the same weights; so do one optimiser step and its state, saved in the
    single-device format; the bytes sent are those the layer shapes give."""
    split_check = REPO / "tests" / "helpers" / "split_check.py"
    done = torchrun(2, [str(split_check), str(tmp_path)], alexnet_env(tmp_path))
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["same_weights"] and result["saved_names"], result
    # float64, so the bound is test_towers.py's EXACT (why: see there)
    assert result["logits"] < EXACT and result["loss"] < EXACT, result
    assert result["gradients"] < EXACT, result
    assert result["weights_after_step"] < EXACT and result["velocity"] < EXACT, result
    assert result["saved_weights"] < EXACT and result["saved_velocity"] < EXACT, result
    assert result["param_groups_equal"] and result["state_round_trip"], result
    assert result["sent_bytes"] == result["bytes_from_shapes"], result


@pytest.fixture(scope="module")
def store224(tmp_path_factory) -> Path:
    from alexnet.data import prepare_store

    root = tmp_path_factory.mktemp("store224")
    image_folder(root / "images", 10, 4, real=True)   # a tenth held out: 1 each
    prepare_store(root / "images", root / "store", size=224, workers=1, progress=False)
    return root / "store"


@pytest.fixture(scope="module")
def one_device(store224, tmp_path_factory) -> Path:
    """The reference: the same training in one process, no towers split."""
    out = tmp_path_factory.mktemp("one") / "run"
    done = run_alexnet(["train", "--data", str(store224), "--out", str(out), *SETTINGS],
                       alexnet_env(out.parent))
    assert done.returncode == 0, done.stderr
    return out


def compare_runs(one: Path, split: Path) -> None:
    a, b = load_file(one / "last.safetensors"), load_file(split / "last.safetensors")
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    torch.manual_seed(0)
    from alexnet.models import build_model

    initial = build_model("alexnet-paper", num_classes=4, dropout=0.0).state_dict()
    moved = {k: (a[k] - initial[k]).abs().max().item() for k in initial}
    share = {k: (a[k] - b[k]).abs().max().item() / max(moved[k], 1e-12) for k in moved}
    assert max(moved.values()) > 1e-3, moved            # the run trained
    assert max(share.values()) < MOVEMENT_SHARE, sorted(share.items(), key=lambda kv: -kv[1])
    final = [json.loads((run / "final.json").read_text())["held_out"]["center"]
             for run in (one, split)]
    assert final[0] == final[1] and final[0]["images"] == 4    # each image counted once


def test_training_with_towers_on_two_ranks_matches_one_device(store224, one_device, tmp_path):
    out = tmp_path / "towers"
    done = torchrun(2, ["-m", "alexnet", "train", "--data", str(store224), "--out", str(out),
                        *SETTINGS, "model_parallel=2"], alexnet_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "one tower per process: 1 pair(s)" in done.stderr
    compare_runs(one_device, out)
    # The training state is in the single-device format too (weights and optimiser).
    from alexnet.engine.checkpoint import load_training_state

    ref, state = (load_training_state(run / "last.state.pt") for run in (one_device, out))
    assert ref["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    share = max(((ref_v := ref["optimizer"]["state"][i]["velocity"]) - v["velocity"]).abs().max()
                / ref_v.abs().max().clamp_min(1e-12) for i, v in state["optimizer"]["state"].items())
    assert share < MOVEMENT_SHARE and ref["model"].keys() == state["model"].keys()
    # So one process without towers continues it.
    more = run_alexnet(["train", "--out", str(out), "epochs=2", "model_parallel=1"],
                       alexnet_env(tmp_path))
    assert more.returncode == 0, more.stderr
    assert "resuming" in more.stderr and "epoch 2/2: train loss" in more.stderr


def test_two_pairs_of_towers_match_one_device(store224, one_device, tmp_path):
    """4 ranks: two pairs, data parallel with each other, each pair half of every batch."""
    out = tmp_path / "pairs"
    done = torchrun(4, ["-m", "alexnet", "train", "--data", str(store224), "--out", str(out),
                        *SETTINGS, "model_parallel=2"], alexnet_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "one tower per process: 2 pair(s)" in done.stderr
    compare_runs(one_device, out)


def test_odd_number_of_ranks_is_refused(monkeypatch):
    from alexnet.engine import distributed
    from alexnet.errors import UserError

    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(UserError, match="needs a multiple of 2 processes, not 3"):
        distributed.setup("cpu", model_parallel=2)
