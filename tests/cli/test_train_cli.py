"""`alexnet train / eval / ensemble` from the command line: results and bad input."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest
import torch

from alexnet.cli import main
from alexnet.data import open_store
from alexnet.engine.checkpoint import load_training_state, save_weights
from alexnet.models import build_model
from helpers.images import image_folder
from helpers.messages import one_error_line
from helpers.runs import alexnet_env, run_alexnet


def make_checkpoint(path: Path, classes: list[str], store_path: Path, seed: int = 0,
                    config: dict | None = None) -> Path:
    torch.manual_seed(seed)
    store = open_store(store_path)
    model = build_model("cifar-conv-local", num_classes=len(classes))
    save_weights(path, model, classes=classes, preprocessing=store.preprocessing(24),
                 extra={"config": config or {}})
    return path


def test_eval_and_ensemble_json(tiny_store, tmp_path, capsys):
    classes = open_store(tiny_store).classes
    a = make_checkpoint(tmp_path / "a.safetensors", classes, tiny_store, seed=0,
                        config={"val_per_class": 5, "seed": 0})
    b = make_checkpoint(tmp_path / "b.safetensors", classes, tiny_store, seed=1)
    assert main(["eval", str(a), "--data", str(tiny_store), "--views", "ten", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"top1_error", "top5_error", "images"} and result["images"] == 160
    assert 0 <= result["top1_error"] <= 1 and result["top5_error"] == 0.0  # 4 classes
    assert main(["eval", str(a), "--data", str(tiny_store), "--split", "held-out",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 4 * 5
    assert main(["ensemble", str(a), str(b), "--data", str(tiny_store), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["members"]) == 2 and result["ensemble"]["images"] == 160


def test_eval_runs_the_fast_path_or_fp32_as_asked(tiny_store, tmp_path, capsys):
    classes = open_store(tiny_store).classes
    a = make_checkpoint(tmp_path / "a.safetensors", classes, tiny_store)
    errors = {}
    for amp in ("bf16", "none"):
        assert main(["eval", str(a), "--data", str(tiny_store), "--amp", amp, "--json"]) == 0
        errors[amp] = json.loads(capsys.readouterr().out)["top1_error"]
    assert abs(errors["bf16"] - errors["none"]) <= 0.05   # bf16 moves a few borderline images
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(a), "--data", str(tiny_store), "--amp", "fp16"])
    assert exit_info.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err


@pytest.mark.parametrize("args, words", [
    (["train", "--data", "{tmp}/nowhere"], "does not exist"),
    (["train", "--data", "{tmp}/empty"], "is an empty folder"),
    (["train", "nosuchkey=1"], "unknown setting 'nosuchkey'; valid settings: model, init_weights, data"),
    (["train", "--recipe", "imagenet-2013"], "unknown recipe"),
    (["train", "--recipe", "imagenet-paper"], "needs training images"),
    (["train", "--resume", "--out", "{tmp}/empty"], "nothing to resume"),
    (["eval", "{tmp}/nowhere.safetensors", "--data", "{tmp}"], "no checkpoint file"),
])
def test_bad_input_is_one_sentence(args, words, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(args) == 2
    assert words in one_error_line(capsys)


def test_store_classes_must_match_the_checkpoint(tiny_store, tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "c.safetensors", ["w", "x", "y", "z"], tiny_store)
    assert main(["eval", str(ckpt), "--data", str(tiny_store)]) == 2
    assert "differ from those of the checkpoint" in one_error_line(capsys)
    assert main(["ensemble", str(ckpt), str(ckpt), "--data", str(tiny_store)]) == 2
    assert "differ" in one_error_line(capsys)


def test_corrupt_checkpoints_are_one_sentence_and_left_alone(tiny_store, tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    assert main(["eval", str(bad), "--data", str(tiny_store)]) == 2
    assert "not a readable alexnet weights file" in one_error_line(capsys)
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.state.pt").write_bytes(b"garbage")
    assert main(["train", "--data", str(tiny_store), "--out", str(run)]) == 2
    assert "not a loadable training state" in one_error_line(capsys)
    assert (run / "last.state.pt").read_bytes() == b"garbage"     # nothing lost


def test_offline_download_says_how_to_pass_data(monkeypatch, tmp_path):
    import torchvision.datasets

    from alexnet.data.cache import download_cifar10
    from alexnet.errors import UserError

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(UserError, match="--data path/to/cifar-10-batches-py"):
        download_cifar10(tmp_path)


def test_a_diverging_run_stops_with_a_clear_message(tiny_store, tmp_path):
    out = tmp_path / "run"
    done = run_alexnet(["train", "--data", str(tiny_store), "--out", str(out), "epochs=1",
                        "val_per_class=5", "batch_size=16", "checkpoint_minutes=0",
                        "lr=1e30", "warmup_epochs=0"], alexnet_env(tmp_path))
    assert done.returncode == 3
    assert "training diverged" in done.stderr and "Traceback" not in done.stderr
    if (out / "last.state.pt").exists():        # the last good checkpoint stays usable
        state = load_training_state(out / "last.state.pt")
        assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_train_json_summary_and_recipes(tiny_store, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_store), "--out", str(out), "epochs=1",
                 "val_per_class=4", "batch_size=32", "eval_views=center", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "finished" and summary["held_out"]["center"]["images"] == 16
    assert {"config.json", "run.json", "metrics.csv", "final.json", "last.safetensors",
            "best.safetensors", "last.state.pt"} <= {p.name for p in out.iterdir()}
    assert main(["train", "--recipes"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("cifar10:", "imagenet-paper:", "imagenet-torchvision:"))


def test_overrides_may_follow_the_options(tmp_path, capsys, monkeypatch):
    import alexnet.experiments.ablations as ablations

    seen = {}
    monkeypatch.setattr(ablations, "run_ablation",
                        lambda name, data, out, seeds, per_class, overrides, recipe, arms:
                        seen.update(seeds=seeds, overrides=overrides) or {})
    assert main(["experiment", "lrn", "--seeds", "2", "epochs=3", "--data", str(tmp_path),
                 "lr=0.1"]) == 0
    assert seen == {"seeds": 2, "overrides": ["epochs=3", "lr=0.1"]}
    with pytest.raises(SystemExit) as exit_:
        main(["models", "epochs=3"])     # a command without overrides still refuses them
    assert exit_.value.code == 2 and "unrecognized arguments: epochs=3" in capsys.readouterr().err


def test_a_new_run_without_out_names_the_unfinished_one(tiny_store, tmp_path, capsys,
                                                        monkeypatch):
    """Ctrl-C, then the same command again: the new run says where the stopped one is and
    how to resume it; run.json marks each run's status."""
    import signal
    import time

    from alexnet.engine import train

    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", str(tiny_store), "epochs=2", "val_per_class=5", "batch_size=32",
            "eval_views=center", "threads=1"]

    def ctrl_c(run):
        run.stop.signum = signal.SIGINT

    monkeypatch.setattr(train, "STEP_HOOKS", [ctrl_c])
    assert main(args) == 130
    stopped = next((tmp_path / "runs").iterdir())
    rel = stopped.relative_to(tmp_path)
    record = json.loads((stopped / "run.json").read_text())
    assert record["status"] == "stopped" and record["resume"] == f"alexnet train --out {rel}"
    assert f"resume with: alexnet train --out {rel}" in capsys.readouterr().err
    monkeypatch.setattr(train, "STEP_HOOKS", [])
    time.sleep(1.1)                          # a new run folder is named by the second
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"note: {rel} holds an unfinished cifar10 run (0 of 2 epochs done); this starts a " \
           f"new one; to continue that one instead: alexnet train --out {rel}" in err
    new = next(p for p in (tmp_path / "runs").iterdir() if p != stopped)
    assert json.loads((new / "run.json").read_text())["status"] == "finished"
    assert main(["train", "--out", str(rel)]) == 0          # resumed, finished
    assert json.loads((stopped / "run.json").read_text())["status"] == "finished"
    capsys.readouterr()
    time.sleep(1.1)
    assert main(args + ["epochs=1"]) == 0
    assert "unfinished" not in capsys.readouterr().err


def test_eval_refuses_a_folder_of_other_classes_before_preparing_it(tmp_path, capsys,
                                                                   monkeypatch):
    from helpers.attack import checkpoint
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path / "cache"))
    ckpt = checkpoint(tmp_path / "c.safetensors")                 # classes a, b, c
    folder = image_folder(tmp_path / "images", 2, 4, real=True)
    for args in (["eval", str(ckpt)], ["ensemble", str(ckpt), str(ckpt)]):
        assert main([*args, "--data", str(folder)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("alexnet: error: the classes of the images in ") and \
            "(4 classes vs 3)" in err and "preparing" not in err, err
    assert not list((tmp_path / "cache" / "stores").glob("*/manifest.json"))


def test_top5_is_left_out_for_five_classes_or_fewer(tiny_store, tmp_path, capsys):
    """With 4 classes every image is in its top 5: a top-5 error of 0.00% says nothing."""
    from alexnet.engine.evaluate import error_text

    classes = open_store(tiny_store).classes
    a = make_checkpoint(tmp_path / "a.safetensors", classes, tiny_store)
    for args in (["eval", str(a)], ["ensemble", str(a), str(a)]):
        assert main([*args, "--data", str(tiny_store)]) == 0
        err = capsys.readouterr().err
        assert "top-1" in err and "top-5" not in err, err
    result = {"top1_error": 0.25, "top5_error": 0.0}
    assert error_text(result, 6, "error") == "top-1 error 25.00%, top-5 error 0.00%"
    assert error_text(result, 5) == "top-1 25.00%"


def test_epoch_lines_with_and_without_validation():
    from alexnet.engine.messages import epoch_line

    row = {"epoch": 1, "train_loss": 2.0, "train_top1_error": 0.5, "val_top1_error": None,
           "val_top5_error": None, "images_per_s": 10.0, "lr": 0.01, "lr_dropped": 0}
    assert "val" not in epoch_line(row, 2, 10)
    row.update(val_top1_error=0.25, val_top5_error=0.05)
    assert ", val top-1 25.00% top-5 5.00% (centre)" in epoch_line(row, 2, 10)
    assert ", val top-1 25.00% (centre)" in epoch_line(row, 2, 4)
