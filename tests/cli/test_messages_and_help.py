"""What a new user reads: strict JSON, file modes, the offline message, progress, help texts,
counted words, and the README's install advice."""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import urllib.error

import pytest

from alexnet.cli import build_parser, main
from alexnet.files import atomic_write_text, json_text
from helpers.paths import REPO


def strict_loads(text: str):
    """json.loads that refuses NaN and Infinity, as strict parsers (JavaScript, Go) do."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def last_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "\x1b" not in err
    line = err.splitlines()[-1]
    assert line.startswith("alexnet: error: ")
    return line


# -- 3. file modes -------------------------------------------------------------------------

def test_atomic_writes_get_the_mode_of_a_plain_open(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
        assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644
        os.umask(0o027)
        atomic_write_text(tmp_path / "group.txt", "x")
        assert stat.S_IMODE((tmp_path / "group.txt").stat().st_mode) == 0o640
        (tmp_path / "kept.txt").write_text("old")
        os.chmod(tmp_path / "kept.txt", 0o664)
        atomic_write_text(tmp_path / "kept.txt", "new")       # an existing file keeps its mode
        assert stat.S_IMODE((tmp_path / "kept.txt").stat().st_mode) == 0o664
    finally:
        os.umask(old)


# -- 4. strict JSON, sensible fractions -------------------------------------------------------

def test_json_text_writes_null_for_nan_and_infinity():
    assert strict_loads(json_text({"std": float("nan"), "e": [float("inf"), 0.5]})) == \
        {"std": None, "e": [None, 0.5]}


def test_error_fractions_are_one_division():
    from alexnet.engine.evaluate import error_fraction

    assert repr(error_fraction(159, 1000)) == "0.159"
    assert repr(error_fraction(1000 - 841, 1000)) == "0.159"   # not 1 - 0.841


def test_experiment_results_are_strict_json_with_one_seed(tmp_path, monkeypatch, capsys):
    """One seed has no spread: its std is null, not NaN (results.json and --json)."""
    import alexnet.engine.train as engine_train

    def fake_train(config, out, resume=None):
        out.mkdir(parents=True, exist_ok=True)
        top1 = 0.159 if config.model_options.get("lrn") else 0.1784
        (out / "final.json").write_text(json.dumps({"held_out": {"ten": {
            "images": 1000, "top1_error": top1 + 3e-17, "top5_error": 0.01, "views": "ten"}}}))
        return {"status": "finished"}

    monkeypatch.setattr(engine_train, "train", fake_train)
    out = tmp_path / "exp"
    assert main(["experiment", "lrn", "--data", str(tmp_path), "--out", str(out),
                 "--seeds", "1", "--json"]) == 0
    printed = strict_loads(capsys.readouterr().out)
    saved = strict_loads((out / "results.json").read_text())
    for results in (printed, saved):
        top1 = results["variants"]["11% net"]["top1_error"]
        assert top1["std"] is None and top1["mean"] == 0.159
        ablation = results["comparisons"]["ablation: 11% net without -> with its norms"]
        assert ablation["difference_top1"] == 0.0194


def test_eval_and_ensemble_json_are_strict(tiny_store, tmp_path, capsys):
    from alexnet.data import open_store
    from alexnet.engine.checkpoint import save_weights
    from alexnet.models import build_model

    store = tiny_store
    s = open_store(store)
    ckpt = tmp_path / "m.safetensors"
    save_weights(ckpt, build_model("cifar-4layer", num_classes=len(s.classes)),
                 classes=s.classes, preprocessing=s.preprocessing(32))
    assert main(["eval", str(ckpt), "--data", str(store), "--json"]) == 0
    result = strict_loads(capsys.readouterr().out)
    assert result["top1_error"] == round(result["top1_error"], 6)
    assert main(["ensemble", str(ckpt), str(ckpt), "--data", str(store), "--json"]) == 0
    result = strict_loads(capsys.readouterr().out)
    assert result["ensemble"]["top1_error"] == round(result["ensemble"]["top1_error"], 6)


# -- 6. offline --------------------------------------------------------------------------------

def test_offline_train_names_the_offline_options_in_one_sentence(tmp_path, monkeypatch, capsys):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "epochs=1"]) == 2
    err = last_error_line(capsys)
    assert "could not download CIFAR-10" in err
    assert "--data path/to/cifar-10-batches-py" in err and "image folder" in err
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in err   # where to get it instead
    assert "urlopen" not in err and "Errno" not in err and "unreachable" not in err
    assert not (tmp_path / "runs").exists()                    # no empty runs/ left behind


# -- 7. progress and TensorBoard -------------------------------------------------------------

def test_bench_eval_shows_progress(capsys):
    assert main(["bench", "eval", "--model", "cifar-4layer", "--images", "2", "--batch", "2",
                 "--steps", "1"]) == 0
    err = capsys.readouterr().err
    assert "timing (interleaved): 6/6 calls" in err     # ours, torchvision, forward-only


def test_tensorboard_hint_is_given_once_and_the_extra_exists(tmp_path, monkeypatch, capsys):
    import tomllib

    from alexnet.engine import run_files

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # not installed
    monkeypatch.setattr(run_files, "_hinted", False)
    run_files.TensorBoard(tmp_path, True)
    run_files.TensorBoard(tmp_path, True)
    err = capsys.readouterr().err
    assert err.count("TensorBoard logging is off") == 1 and '.[tensorboard]' in err
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(req.startswith("tensorboard") for req in extras["tensorboard"])


# -- 8. help texts -----------------------------------------------------------------------------

def all_parsers(parser, name="alexnet"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                yield from all_parsers(subparser, f"{name} {sub}")


def test_help_texts_have_no_literal_percent_signs_and_every_argument_has_help():
    for name, parser in all_parsers(build_parser()):
        text = parser.format_help()
        assert "%%" not in text and "%(" not in text, name
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, f"{name} {action.option_strings or action.dest}"


def test_experiment_help_shows_its_defaults_and_each_bench_target_has_its_own():
    parsers = dict(all_parsers(build_parser()))
    text = " ".join(parsers["alexnet experiment"].format_help().split())
    assert "default 3" in text and "default 60" in text and "default 2)" in text
    assert "25% training error" in text
    descriptions = {parsers[f"alexnet bench {t}"].description for t in
                    ("model", "train", "eval", "prepare")}
    assert len(descriptions) == 4
    assert "TenCrop" in parsers["alexnet bench eval"].format_help()


# -- 10. a whole pickled model -----------------------------------------------------------------

def test_a_whole_pickled_model_is_one_clean_sentence(tmp_path, capsys):
    import torch
    import torchvision

    whole = tmp_path / "whole.pth"
    torch.save(torchvision.models.alexnet(), whole)
    assert main(["import-torchvision", str(whole), "--out", str(tmp_path / "x.safetensors")]) == 2
    err = last_error_line(capsys)
    assert "holds a pickled torchvision.models.alexnet.AlexNet object, not a plain state " \
        "dict" in err and "weights_only=False" not in err
    assert "state_dict()" in err and not (tmp_path / "x.safetensors").exists()


def test_bench_loader_with_one_epoch_does_not_crash():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_loader",
                                                  REPO / "benchmarks" / "bench_loader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import torch

    rate = module.time_epochs(lambda epoch: iter([torch.zeros(8, 3)] * 4), 1, "cpu")
    assert rate > 0


# -- 11. CPU-only installs ---------------------------------------------------------------------

def test_readme_tells_cpu_users_about_the_cpu_wheels_and_ci_keeps_the_pinned_command():
    readme = (REPO / "README.md").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install --quiet torch==2.14.1 torchvision==0.29.1" in ci
    assert "download.pytorch.org" not in ci


# -- 13. small things --------------------------------------------------------------------------

def test_counted_words_and_gitignore(tmp_path, capsys):
    from PIL import Image

    from alexnet.console import plural

    assert [plural(1, "epoch"), plural(2, "epoch"), plural(1, "class"), plural(10, "class"),
            plural(45000, "image")] == ["1 epoch", "2 epochs", "1 class", "10 classes",
                                        "45,000 images"]
    (tmp_path / "one" / "cats").mkdir(parents=True)
    Image.new("RGB", (40, 40), "red").save(tmp_path / "one" / "cats" / "a.png")
    assert main(["prepare", str(tmp_path / "one"), str(tmp_path / "store"), "--size", "32",
                 "--workers", "1"]) == 0
    assert "prepared 1 image of 1 class into" in capsys.readouterr().err
    ignored = (REPO / ".gitignore").read_text().split()
    assert "runs/" in ignored and "stores/" in ignored


@pytest.mark.parametrize("args", [["eval", "x", "--data", "y", "--threads", "0"],
                                  ["train", "threads=0"]])
def test_zero_threads_is_one_sentence(args, capsys):
    assert main(args) == 2
    assert "threads must be" in (line := last_error_line(capsys)) and "got 0" in line


# -- issue 27, item 13: a setting written as an option, or misspelt -----------------------------

@pytest.mark.parametrize("args, words", [
    (["train", "--epochs", "1"], "--epochs is not an option of this command; settings are "
                                 "written key=value: did you mean epochs=1?"),
    (["train", "--batch-size=8"], "did you mean batch_size=8?"),
    (["train", "--epoch", "3"], "did you mean epochs=3?"),
    (["train", "epoch=1"], "unknown setting 'epoch' (did you mean epochs?); valid settings:"),
    (["train", "model.lnr=false"], "unknown option model.lnr for model 'cifar-conv-local' "
                                   "(did you mean model.lrn?)"),
    (["train", "--recipe", "cifar1"], "unknown recipe 'cifar1' (did you mean cifar10?)"),
])
def test_did_you_mean(args, words, capsys):
    assert main(args) == 2
    assert words in last_error_line(capsys)


# -- issue 27, item 15: help that says all of it, one way ---------------------------------------

def _help(*command: str) -> str:
    parser = build_parser()
    for action in parser._subparsers._group_actions:
        sub = action.choices[command[0]]
        for name in command[1:]:
            sub = next(a for a in sub._subparsers._group_actions).choices[name]
        return sub.format_help()
    raise AssertionError(command)


def test_train_help_lists_every_recipe_and_device_is_worded_once():
    from alexnet.cli._args import DEVICE_HELP
    from alexnet.recipes import recipe_names

    text = " ".join(_help("train").split())
    for name in recipe_names():
        assert f" {name}: " in text or f" {name} (default): " in text, name
    assert "epochs=30 is the README's" not in text
    helps = {" ".join(_help(*c).split()) for c in (["eval"], ["ensemble"], ["predict"],
                                                    ["figures", "neighbours"], ["bench", "eval"])}
    for text in helps:
        assert " ".join(DEVICE_HELP.split()) in text
        assert "cuda if any" not in text and "cuda when available)" not in text
    predict = " ".join(_help("predict").split())
    assert '{"label", "prob", "class"}' in predict
