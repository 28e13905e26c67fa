"""The held-out split on small folders, what a run says about it, and `eval --split held-out`
refusing any store but the one the checkpoint's run held its images out of."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from alexnet.cli import main
from alexnet.data import open_store, prepare_store
from alexnet.data.cache import ensure_store
from alexnet.engine.checkpoint import load_model
from alexnet.engine.inputs import held_out_count, held_out_indices, split_validation
from alexnet.errors import UserError
from helpers.images import image_folder
from helpers.messages import one_error_line


def test_the_split_holds_out_at_most_a_tenth_and_never_a_whole_class():
    sizes = {0: 300, 1: 30, 2: 5, 3: 5000, 4: 1}
    labels = np.concatenate([np.full(n, c) for c, n in sizes.items()])
    train, val = split_validation(labels, per_class=500, seed=0)
    held = np.bincount(labels[val], minlength=len(sizes))
    assert held.tolist() == [30, 3, 0, 500, 0]
    assert (np.bincount(labels[train], minlength=len(sizes)) >= 1).all()
    assert held_out_count(30, 500) == 3 and held_out_count(30, 500, divisor=None) == 29


def test_the_cap_leaves_a_cifar_sized_split_as_it_was():
    """The shipped model's 5,000 held-out CIFAR-10 images are the same under the cap."""
    labels = np.repeat(np.arange(10), 5000)
    capped = split_validation(labels, 500, seed=0)[1]
    uncapped = split_validation(labels, 500, seed=0, divisor=None)[1]
    assert len(capped) == 5000 and np.array_equal(capped, uncapped)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """`alexnet train --data FOLDER epochs=1` on 4 classes x 30 images, with the defaults."""
    root = tmp_path_factory.mktemp("small")
    os.environ["ALEXNET_CACHE"] = str(root / "cache")
    old_mask = os.umask(0o022)
    try:
        folder = image_folder(root / "images", 30, 4, real=True)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["train", "--data", str(folder), "--out", str(root / "run"), "epochs=1"])
    finally:
        os.umask(old_mask)
        os.environ.pop("ALEXNET_CACHE", None)
    return {"root": root, "run": root / "run", "folder": folder, "code": code,
            "stderr": err.getvalue()}


def test_a_30_per_class_folder_trains_with_the_defaults(small_run):
    assert small_run["code"] == 0, small_run["stderr"]
    err = small_run["stderr"]
    assert "lower batch_size" not in err
    assert "training cifar-conv-local for 1 epoch on 108 images of 4 classes, holding out 12 " \
           "for validation (3 per class: val_per_class=500, at most a tenth of each class)" in err
    final = json.loads((small_run["run"] / "final.json").read_text())
    assert final["train_images"] == 108 and final["held_out_images"] == 12
    assert final["held_out"]["ten"]["images"] == 12


def test_train_names_its_run_folder_first_and_the_next_commands_last(small_run):
    lines = small_run["stderr"].splitlines()
    run = str(small_run["run"])
    start = next(i for i, line in enumerate(lines) if line.startswith("run folder:"))
    assert lines[start] == f"run folder: {run}"
    assert start < next(i for i, line in enumerate(lines) if line.startswith("epoch 1/1:"))
    tail = "\n".join(lines[lines.index("next:"):])
    assert f"alexnet eval {run} --data " in tail and "--split held-out --views ten" in tail
    assert f"alexnet figures curves {run}" in tail and f"alexnet predict {run} " in tail


def test_messages_count_in_words(small_run):
    err = small_run["stderr"]
    assert "1 epochs" not in err and " x cpu" not in err
    assert "(12 images, centre view)" in err and "center view" not in err
    assert "(12 images, ten views)" in err


def test_run_files_get_the_mode_a_plain_open_would_give(small_run):
    for name in ("last.safetensors", "best.safetensors", "last.state.pt", "metrics.csv",
                 "final.json", "config.json", "run.json"):
        assert (small_run["run"] / name).stat().st_mode & 0o777 == 0o644, name


def test_the_checkpoint_records_its_store_and_split(small_run):
    meta = load_model(small_run["run"]).meta
    assert meta["store"]["count"] == 120 and len(meta["store"]["digest"]) == 16
    assert meta["split"]["held_out_images"] == 12 and meta["split"]["train_images"] == 108


def test_eval_held_out_on_its_own_store_uses_the_recorded_split(small_run, capsys, monkeypatch):
    monkeypatch.setenv("ALEXNET_CACHE", str(small_run["root"] / "cache"))
    assert main(["eval", str(small_run["run"]), "--data", str(small_run["folder"]),
                 "--split", "held-out", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 12


def test_eval_held_out_on_another_store_is_refused(small_run, tmp_path, capsys, monkeypatch):
    """A subset of the training images (as in the 3,000-image subset of the issue)."""
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path / "cache"))
    subset = tmp_path / "subset"
    for folder in sorted(Path(small_run["folder"]).iterdir()):
        (subset / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:20]:
            (subset / folder.name / image.name).symlink_to(image.resolve())
    assert main(["eval", str(small_run["run"]), "--data", str(subset), "--split",
                 "held-out"]) == 2
    err = one_error_line(capsys, after_progress=True)
    assert "--split held-out refused: the checkpoint was trained on another store " \
           "(120 images" in err and "(80 images" in err and "use --split all" in err
    assert main(["eval", str(small_run["run"]), "--data", str(subset), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 80


def test_older_checkpoints_are_checked_by_their_mean_image(tmp_path, capsys):
    """Checkpoints from before the store record (the shipped one) carry the training store's
    mean image: a store with another mean is refused, the same store accepted."""
    from alexnet.engine.checkpoint import save_weights
    from alexnet.models import build_model

    store_a, store_b = tmp_path / "a", tmp_path / "b"
    prepare_store(image_folder(tmp_path / "ia", 20, 2, real=True), store_a, size=32, workers=1,
                  progress=False)
    prepare_store(image_folder(tmp_path / "ib", 12, 2, real=True), store_b, size=32, workers=1,
                  progress=False)   # the first 12 of each class: another mean image
    a = open_store(store_a)
    ckpt = tmp_path / "old.safetensors"
    save_weights(ckpt, build_model("cifar-4layer", num_classes=2), classes=a.classes,
                 preprocessing=a.preprocessing(32),
                 extra={"config": {"val_per_class": 3, "seed": 0}})
    assert main(["eval", str(ckpt), "--data", str(store_a), "--split", "held-out",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 2 * 3   # the old rule: 3 of 20
    assert main(["eval", str(ckpt), "--data", str(store_b), "--split", "held-out"]) == 2
    assert "mean image of the store" in one_error_line(capsys, after_progress=True)


def test_eval_held_out_says_when_the_run_trained_on_those_images_too(small_run, capsys,
                                                                      monkeypatch):
    """After `fold_in_epoch` the held-out images train too (cuda-convnet's methodology, recipe
    cifar10-11pct): their error is then no held-out error, and eval says so."""
    monkeypatch.setenv("ALEXNET_CACHE", str(small_run["root"] / "cache"))
    loaded = load_model(small_run["run"])
    store = ensure_store(small_run["folder"], loaded.preprocessing.size)
    held_out_indices(store, loaded.meta, loaded.preprocessing)
    assert "no held-out error" not in capsys.readouterr().err
    folded = {**loaded.meta, "epoch": 3, "config": {**loaded.meta["config"], "fold_in_epoch": 2}}
    assert len(held_out_indices(store, folded, loaded.preprocessing)) == 12
    assert "from epoch 3 on (fold_in_epoch=2); their error is no held-out error" in \
        capsys.readouterr().err


def test_eval_held_out_of_a_run_that_held_out_nothing_is_refused(small_run, capsys,
                                                                 monkeypatch):
    """A run with val_per_class=0 (the shipped model trained on all 50,000) has no held-out
    images: one sentence, not an error over zero images."""
    monkeypatch.setenv("ALEXNET_CACHE", str(small_run["root"] / "cache"))
    loaded = load_model(small_run["run"])
    store = ensure_store(small_run["folder"], loaded.preprocessing.size)
    everything = {**loaded.meta, "split": None,
                  "config": {**loaded.meta["config"], "val_per_class": 0}}
    with pytest.raises(UserError, match=r"held out no images of .*\(val_per_class=0\), it "
                       r"trained on all of them; use --split all"):
        held_out_indices(store, everything, loaded.preprocessing)


@pytest.mark.parametrize("split", ["missing", {}, {"seed": 0}, "3 per class"])
def test_eval_held_out_of_a_checkpoint_without_its_split_record_is_refused(
        small_run, split, monkeypatch):
    """A checkpoint that records its store but not (all of) its split: the rule of the
    checkpoints from before the record would call 117 images of this folder held out, 105 of
    which the run trained on."""
    monkeypatch.setenv("ALEXNET_CACHE", str(small_run["root"] / "cache"))
    loaded = load_model(small_run["run"])
    store = ensure_store(small_run["folder"], loaded.preprocessing.size)
    meta = {k: v for k, v in loaded.meta.items() if k != "split"}
    if split != "missing":
        meta["split"] = split
    with pytest.raises(UserError, match=r"--split held-out refused: the checkpoint does not record "
                       r"which images its run held out \(.*\), so they are unknown; use "
                       r"--split all"):
        held_out_indices(store, meta, loaded.preprocessing)


def test_eval_and_ensemble_of_all_images_say_which_ones_the_run_trained_on(
        small_run, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ALEXNET_CACHE", str(small_run["root"] / "cache"))
    run, folder = str(small_run["run"]), str(small_run["folder"])
    assert main(["eval", run, "--data", folder, "--json"]) == 0
    err = capsys.readouterr().err
    assert f"note: {run} trained on 108 of these 120 images (its training store); --split " \
           "held-out evaluates only the 12 it held out" in err
    assert main(["ensemble", run, run, "--data", folder, "--json"]) == 0
    assert capsys.readouterr().err.count("trained on 108 of these 120 images") == 2
    assert main(["ensemble", run, run, "--data", folder, "--split", "held-out", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ensemble"]["images"] == 12 and "note:" not in captured.err
    # A run that held out nothing (as the shipped model): its training error, said so.
    loaded = load_model(small_run["run"])
    from alexnet.engine.checkpoint import save_weights

    everything = tmp_path / "all.safetensors"
    save_weights(everything, loaded.model, classes=loaded.classes,
                 preprocessing=loaded.preprocessing,
                 extra={**loaded.meta, "config": {**loaded.meta["config"], "val_per_class": 0}})
    assert main(["eval", str(everything), "--data", folder]) == 0
    assert "trained on all 120 of these images (its training store): this is its training " \
           "error, not a test error" in capsys.readouterr().err


def test_ensemble_held_out_needs_images_every_member_held_out(small_run, capsys, monkeypatch,
                                                              tmp_path):
    """Members whose runs held out different images (another seed) have none in common."""
    from alexnet.config import Config
    from alexnet.engine.checkpoint import save_weights
    from alexnet.engine.inputs import split_record

    monkeypatch.setenv("ALEXNET_CACHE", str(small_run["root"] / "cache"))
    loaded = load_model(small_run["run"])
    store = ensure_store(small_run["folder"], loaded.preprocessing.size)
    ours = held_out_indices(store, loaded.meta, loaded.preprocessing)
    seed = next(s for s in range(1, 1000)
                if not len(np.intersect1d(ours, split_validation(store.labels, 1, s)[1])))
    train_idx, val_idx = split_validation(store.labels, 1, seed)
    other = tmp_path / "other.safetensors"
    save_weights(other, loaded.model, classes=loaded.classes,
                 preprocessing=loaded.preprocessing,
                 extra={**loaded.meta,
                        "config": {**loaded.meta["config"], "seed": seed, "val_per_class": 1},
                        "split": split_record(Config(seed=seed, val_per_class=1), train_idx,
                                              val_idx)})
    assert main(["ensemble", str(other), "--data", str(small_run["folder"]), "--split",
                 "held-out", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ensemble"]["images"] == 4
    assert main(["ensemble", str(small_run["run"]), str(other), "--data",
                 str(small_run["folder"]), "--split", "held-out"]) == 2
    assert "was held out by every member (their runs drew different splits" in \
        one_error_line(capsys, after_progress=True)
