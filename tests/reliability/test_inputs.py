"""Inputs: source trees with loops and unreadable parts, crafted checkpoints, model cards,
manifests and training states (issue 14, items 3, 4, 6, 9 and 11)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from alexnet.cli import main
from alexnet.data import open_store, prepare_store
from alexnet.engine.checkpoint import STATE_FORMAT, save_training_state
from helpers.attack import checkpoint, run_unprivileged, unreadable
from helpers.images import gradient, image_folder, save
from helpers.messages import one_error_line
from helpers.runs import alexnet_env


def prepare_json(capsys, src: Path, out: Path, *extra: str) -> tuple[int, dict]:
    code = main(["prepare", str(src), str(out), "--size", "16", "--workers", "1", "--json",
                 *extra])
    return code, json.loads(capsys.readouterr().out)


# ---- 3. symlink loops -------------------------------------------------------------------

def test_symlink_loops_are_reported_not_followed(tmp_path, capsys):
    src = image_folder(tmp_path / "src", 3)
    (src / "bee" / "up").symlink_to("..")                      # back to the source folder
    (src / "cow" / "deep").mkdir()
    (src / "cow" / "deep" / "back").symlink_to("../..")        # a second loop, deeper
    (src / "loop").symlink_to(".")                             # a "class" that is the source
    code, summary = prepare_json(capsys, src, tmp_path / "store")
    assert code == 0 and summary["classes"] == ["ant", "bee", "cow"]
    assert summary["per_class"] == [3, 3, 3]                   # not 2,460 images
    assert {s["file"] for s in summary["skipped"]} == {"bee/up/", "cow/deep/back/", "loop/"}
    assert all("(a loop); not followed" in s["reason"] for s in summary["skipped"])
    assert main(["prepare", str(src), str(tmp_path / "store"), "--size", "16", "--strict"]) == 1


def test_a_linked_folder_is_followed_once(tmp_path, capsys):
    src = image_folder(tmp_path / "src", 3)
    extra = tmp_path / "elsewhere"
    save(extra / "x.png", gradient(20, 20))
    (src / "ant" / "more").symlink_to(extra)
    (src / "ant" / "same").symlink_to(extra)                   # the same folder again
    code, summary = prepare_json(capsys, src, tmp_path / "store")
    assert code == 0 and summary["per_class"] == [4, 3, 3]
    assert [s["file"] for s in summary["skipped"]] == ["ant/same/"]


# ---- 4. unreadable folders and files: refused by the kernel itself ---------------------------
# The commands run in a process that file modes apply to (helpers.attack.unprivileged), so
# these tests see what a user sees, not what a patched os.scandir pretends.

def test_unreadable_folders_and_files_are_reported_and_fail_strict(tmp_path, request):
    src = image_folder(tmp_path / "src", 3)
    unreadable(src / "bee", request)                            # a whole class
    unreadable(src / "cow" / "1.png", request)                  # one image
    args = ["prepare", str(src), str(tmp_path / "store"), "--size", "16", "--workers", "1"]
    done = run_unprivileged([*args, "--json"], alexnet_env(tmp_path))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    summary = json.loads(done.stdout)
    # The class stays, so the labels after it do not shift.
    assert summary["classes"] == ["ant", "bee", "cow"] and summary["per_class"] == [3, 0, 2]
    reasons = {s["file"]: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {"bee/", "cow/1.png"}
    assert "cannot read folder: Permission denied" in reasons["bee/"]
    assert "Permission denied" in reasons["cow/1.png"]
    assert open_store(tmp_path / "store").labels.tolist() == [0, 0, 0, 2, 2]
    assert run_unprivileged([*args, "--strict"], alexnet_env(tmp_path)).returncode == 1


def test_train_and_predict_skip_an_unreadable_class_folder(tmp_path, request):
    src = image_folder(tmp_path / "src", 3)
    unreadable(src / "bee", request)
    env = alexnet_env(tmp_path)
    done = run_unprivileged(["train", "--data", str(src), "--out", str(tmp_path / "run"),
                             "epochs=1", "threads=1", "val_per_class=0"], env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "bee/" in done.stderr and "skipped" in done.stderr
    done = run_unprivileged(["predict", str(tmp_path / "run"), str(src), "--json"], env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    results = json.loads(done.stdout)
    assert [Path(r["file"]).relative_to(src).as_posix() for r in results if "top" in r] == \
        [f"{c}/{i}.png" for c in ("ant", "cow") for i in range(3)]
    assert {"file": str(src / "bee"), "error": "cannot read folder: Permission denied"} \
        in results
    unreadable(src, request)                          # the folder given, not one inside
    done = run_unprivileged(["predict", str(src)], env)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"alexnet: {src}: skipped: cannot read folder: Permission denied" in done.stderr


def test_an_unreadable_source_folder_is_one_sentence(tmp_path, request):
    src = image_folder(tmp_path / "src", per_class=1)
    unreadable(src, request)
    done = run_unprivileged(["prepare", str(src), str(tmp_path / "store")],
                            alexnet_env(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    err = done.stderr.strip()
    assert err.startswith("alexnet: error: ") and "\n" not in err
    assert "cannot read the folder" in err


# ---- 6, 9, 11. crafted checkpoints ----------------------------------------------------------

PRE = {"size": 32, "crop": 32, "kind": "per-channel", "channel_mean": [120, 120, 120],
       "channel_std": [60, 60, 60]}


@pytest.mark.parametrize("metadata, tensors, words", [
    ({"preprocessing": {**PRE, "size": 100000}}, None,
     "preprocessing size 100000 is not from 1 to 2048"),
    ({"preprocessing": {**PRE, "crop": 40}}, None, "crop 40 is not from 1 to its size 32"),
    ({"preprocessing": {**PRE, "channel_std": [0, 60, 60]}}, None,
     "channel_std [0, 60, 60] is not 3 finite numbers greater than 0"),
    ({"preprocessing": {**PRE, "channel_mean": "grey"}}, None, "channel_mean is not 3 finite"),
    ({"preprocessing": [32, 32]}, None, "preprocessing is not a JSON object"),
    ({"classes": ["a", "b"]}, None, "names 2 classes but its model has 3 outputs"),
    ({"classes": "abc"}, None, "classes is not a list of names"),
    ({"options": [1, 2]}, None, "options is not a JSON object"),
    ({"options": {"num_classes": 10 ** 9}}, None, "num_classes 1000000000 is not from 1"),
    ({"options": {"num_classes": 3, "layers": 99}}, None, "'layers' is not an option"),
    ({"model": ("raw", "resnet-50")}, None, "model 'resnet-50' is not one of"),
    ({}, {"classifier.weight": torch.full((3, 1024), float("nan"))},
     "tensor 'classifier.weight' holds NaN or infinite values"),
    ({}, {"preprocessing.mean_image": torch.zeros(8, 8, 3)}, "preprocessing kind and its mean"),
    ({"epoch": ("raw", "{")}, None, "its 'epoch' entry is not JSON"),
    ({"classes": ("raw", "not json")}, None, "its 'classes' entry is not JSON"),
])
def test_crafted_checkpoints_are_refused_before_anything_is_built(metadata, tensors, words,
                                                                  tmp_path, capsys):
    raw = {k: v[1] if isinstance(v, tuple) else json.dumps(v) for k, v in metadata.items()}
    ckpt = checkpoint(tmp_path / "c.safetensors", tensors, **raw)
    save(tmp_path / "x.png", gradient(40, 40))
    assert main(["predict", str(ckpt), str(tmp_path / "x.png"), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""                                  # no JSON, so never a NaN
    err = captured.err.strip()
    assert err.startswith("alexnet: error: ") and "\n" not in err and words in err, err
    assert "damaged alexnet weights file" in err and str(ckpt) in err


def test_model_cards_must_exist_parse_and_hold_a_sha(tmp_path, monkeypatch, capsys):
    from alexnet.engine import checkpoint as ckpt

    monkeypatch.setattr(ckpt, "PRETRAINED_DIR", tmp_path)
    checkpoint(tmp_path / "tiny.safetensors")
    save(tmp_path / "x.png", gradient(40, 40))
    cases = [(None, "has no model card"), ("{not json", "is not readable JSON"),
             ("[]", "holds no SHA-256"), ('{"sha256": "abc"}', "holds no SHA-256")]
    for card, words in cases:
        if card is not None:
            (tmp_path / "tiny.json").write_text(card)
        assert main(["predict", "tiny", str(tmp_path / "x.png")]) == 2
        assert words in one_error_line(capsys)


# ---- 6, 9. store manifests and labels -------------------------------------------------------

@pytest.fixture
def store(tmp_path) -> Path:
    prepare_store(image_folder(tmp_path / "src", 3), tmp_path / "store", size=32, workers=1,
                  progress=False)
    return tmp_path / "store"


@pytest.mark.parametrize("field, value, words", [
    ("count", -1, "count is -1, expected a whole number of images"),
    ("size", 100000, "size is 100000, expected a whole number from 1 to 2048"),
    ("classes", "ant bee cow", "classes is 'ant bee cow', expected a list"),
    ("class_names", ["ant"], "class_names is ['ant'], expected a list of 3 names"),
    ("version", "1", "version is '1', expected a whole number"),
])
def test_damaged_manifests_are_one_sentence(store, field, value, words, capsys):
    manifest = json.loads((store / "manifest.json").read_text())
    (store / "manifest.json").write_text(json.dumps({**manifest, field: value}))
    assert main(["import-torchvision", "w.pth", "--out", "o.safetensors",
                 "--classes-from", str(store)]) == 2
    assert words in one_error_line(capsys)


def test_a_manifest_that_is_a_list_is_one_sentence(store, tmp_path, capsys):
    (store / "manifest.json").write_text("[1, 2, 3]")
    save(tmp_path / "val" / "ant" / "x.png", gradient(20, 20))
    assert main(["prepare", str(tmp_path / "val"), str(tmp_path / "v"), "--classes",
                 str(store)]) == 2
    assert "is not an alexnet store manifest" in one_error_line(capsys)


@pytest.mark.parametrize("labels, words", [
    (np.array([object()] * 9), "is not a readable labels array"),
    (np.array([0, 1, 2, 0, 1, 2, 0, 1, 7]), "holds labels outside 0..2"),
    (np.zeros(4, np.int64), "not 9 integer labels"),
    (np.zeros(9, np.float32), "not 9 integer labels"),
])
def test_damaged_labels_are_refused(store, labels, words, tmp_path, capsys):
    with open(store / "labels.npy", "wb") as f:
        np.save(f, labels, allow_pickle=True)
    ckpt = checkpoint(tmp_path / "c.safetensors", classes=json.dumps(["ant", "bee", "cow"]))
    assert main(["eval", str(ckpt), "--data", str(store)]) == 2
    assert words in one_error_line(capsys)


@pytest.mark.parametrize("files, words", [
    ('["ant/0.png", "ant/1', "files.json is not valid JSON"),
    ('{"0": "ant/0.png"}', "files.json holds a dict, not a list of 9 file names"),
    ('["ant/0.png"]', "files.json holds 1 file name, not 9"),
    (json.dumps(["ant/0.png"] * 8 + [7]), "files.json holds 7 (of type int), not a file name"),
])
def test_a_damaged_file_list_is_refused_when_the_store_is_opened(store, files, words, tmp_path,
                                                                 capsys):
    """Not an epoch later, at the first save, nor as a traceback of eval --split held-out."""
    (store / "files.json").write_text(files)
    ckpt = checkpoint(tmp_path / "c.safetensors", classes=json.dumps(["ant", "bee", "cow"]),
                      config=json.dumps({"val_per_class": 1, "seed": 0}),
                      store=json.dumps({"count": 9, "digest": "0123456789abcdef"}))
    assert main(["eval", str(ckpt), "--data", str(store), "--split", "held-out"]) == 2
    err = one_error_line(capsys)
    assert words in err and str(store / "files.json") in err and "prepare" in err
    assert main(["train", "--data", str(store), "--out", str(tmp_path / "run"), "epochs=1",
                 "threads=1"]) == 2
    err = one_error_line(capsys)
    assert words in err and "epoch 1/1" not in err


# ---- 9. training states ---------------------------------------------------------------------

@pytest.mark.parametrize("state, words", [
    ({"format": STATE_FORMAT, "epoch": 1}, "is not a complete training state ('config' is "
     "missing, expected a dict)"),
    ({"format": STATE_FORMAT, "config": {}, "model": {}, "optimizer": {}, "schedule": {},
      "epoch": "1", "step": 0, "global_step": 0, "history": [], "sums": {}, "classes": [],
      "rng": {}}, "('epoch' is a str, expected a int)"),
    ({"format": STATE_FORMAT, "config": {"epochs": "many"}, "model": {}, "optimizer": {},
      "schedule": {}, "epoch": 1, "step": 0, "global_step": 0, "history": [], "sums": {},
      "classes": [], "rng": {}}, "setting epochs='many' is not a valid int"),
])
def test_malformed_training_states_are_one_sentence(state, words, tmp_path, capsys):
    save_training_state(tmp_path / "run" / "last.state.pt", state)
    assert main(["train", "--out", str(tmp_path / "run"), "--data", str(tmp_path)]) == 2
    assert words in one_error_line(capsys)
    assert (tmp_path / "run" / "last.state.pt").is_file()      # left as it was


def test_refusals_never_relay_the_advice_to_disable_weights_only(tmp_path, capsys):
    class RunsCode:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"format": STATE_FORMAT, "x": RunsCode()}, tmp_path / "evil.pt")
    (tmp_path / "run").mkdir()
    os.replace(tmp_path / "evil.pt", tmp_path / "run" / "last.state.pt")
    torch.save({"fc": torch.nn.Linear(2, 2)}, tmp_path / "module.pth")
    for args in (["train", "--out", str(tmp_path / "run")],
                 ["import-torchvision", str(tmp_path / "module.pth"), "--out",
                  str(tmp_path / "o.safetensors")]):
        assert main(args) == 2
        err = one_error_line(capsys)
        assert "refused" in err and ("GLOBAL" in err or "holds a pickled" in err), err
        assert "weights_only" not in err and "can still be loaded" not in err
        assert err.endswith((")", "model", "import that")), err      # whole, not cut off


# ---- issue 27, item 5: messages that named the wrong cause -----------------------------------

def test_a_folder_where_a_checkpoint_goes_is_named_before_training(tiny_store, tmp_path,
                                                                   capsys):
    (tmp_path / "run" / "last.state.pt").mkdir(parents=True)
    assert main(["train", "--data", str(tiny_store), "--out", str(tmp_path / "run"),
                 "epochs=1"]) == 2
    err = one_error_line(capsys)
    assert "last.state.pt' is a folder, where the run saves" in err and "move it" in err
    assert "free some space" not in err


@pytest.mark.parametrize("manifest, words", [
    ("[1, 2, 3]", "is not an alexnet store manifest"),
    ("{not json", "is not valid JSON"),
])
def test_a_damaged_manifest_is_not_called_an_empty_folder(store, manifest, words, tmp_path,
                                                          capsys):
    (store / "manifest.json").write_text(manifest)
    for args in (["train", "--data", str(store), "--out", str(tmp_path / "run")],
                 ["eval", str(checkpoint(tmp_path / "c.safetensors")), "--data", str(store)]):
        assert main(args) == 2
        err = one_error_line(capsys)
        assert words in err and "no images found" not in err


@pytest.mark.parametrize("content, words, state_words", [
    (bytes(range(256)) * 8, "is not a PyTorch file: its bytes are neither a zip archive nor a "
     "pickle", "is not a loadable training state: its bytes are neither a zip archive nor a "
     "pickle"),
    (b"\x80\x02" + bytes(range(200)), "is damaged or not a PyTorch file (its pickle does not "
     "parse: Unsupported operand 0)", "is damaged or not a loadable training state, refused "
     "(Unsupported operand 0)"),
    (b"hello\n", "is not a PyTorch file", "is not a loadable training state: its bytes"),
])
def test_bytes_that_are_no_torch_file_are_not_called_objects(content, words, state_words,
                                                             tmp_path, capsys):
    (tmp_path / "w.pth").write_bytes(content)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.state.pt").write_bytes(content)
    for args, expected in ((["import-torchvision", str(tmp_path / "w.pth"), "--out",
                             str(tmp_path / "o.safetensors")], words),
                           (["train", "--out", str(tmp_path / "run")], state_words)):
        assert main(args) == 2
        err = one_error_line(capsys)
        assert expected in err and "objects other than tensors" not in err, err


def test_a_mean_image_with_nan_is_named_so(tmp_path, capsys):
    from alexnet.data.normalization import Preprocessing
    from alexnet.engine.checkpoint import save_weights
    from alexnet.models import build_model

    mean = torch.full((32, 32, 3), 100.0)
    mean[3, 4, 1] = float("nan")
    save_weights(tmp_path / "c.safetensors", build_model("cifar-4layer", num_classes=3),
                 classes=["a", "b", "c"], preprocessing=Preprocessing(32, 32, mean_image=mean))
    save(tmp_path / "x.png", gradient(40, 40))
    assert main(["predict", str(tmp_path / "c.safetensors"), str(tmp_path / "x.png")]) == 2
    err = one_error_line(capsys)
    assert "its mean image holds NaN or infinite values" in err and "not finite [" not in err


def test_num_classes_other_than_the_datas_is_refused_before_the_run_is_written(
        tiny_store, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_store), "--out", str(tmp_path / "run"),
                 "model.num_classes=0"]) == 2
    err = one_error_line(capsys)
    assert "model.num_classes=0, but the training data has 4 classes" in err
    assert not (tmp_path / "run" / "config.json").exists()


def test_labels_for_a_source_that_does_not_use_them_are_refused(tmp_path, capsys):
    src = image_folder(tmp_path / "src", 3)
    (tmp_path / "nonsense.txt").write_text("what\never\n")
    assert main(["prepare", str(src), str(tmp_path / "store"), "--labels",
                 str(tmp_path / "nonsense.txt")]) == 2
    err = one_error_line(capsys)
    assert "--labels" in err and "is an image folder, labelled by its class sub-folders" in err


def test_json_output_names_non_utf8_files_in_valid_unicode(tmp_path, capsys):
    src = image_folder(tmp_path / "src", per_class=1)
    odd = Path((str(src / "bee").encode() + b"/caf\xe9.png").decode("utf-8", "surrogateescape"))
    odd.write_bytes(b"")                                         # skipped, so it is listed
    assert main(["prepare", str(src), str(tmp_path / "store"), "--size", "8", "--workers", "1",
                 "--json"]) == 0
    out = capsys.readouterr().out
    out.encode("utf-8")                                          # no lone surrogates
    assert "\\udc" not in out
    assert [s["file"] for s in json.loads(out)["skipped"]] == ["bee/caf\\xe9.png"]
