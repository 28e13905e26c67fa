"""The CIFAR-10 experiments run end to end in --quick mode and write their outputs.

Only that they run and what they write is checked here: the numbers of a quick run on a
handful of images mean nothing (the README quotes the full runs).
"""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from alexnet.cli import main
from alexnet.experiments.common import mean_and_spread
from alexnet.experiments.relu_vs_tanh import epochs_to


@pytest.fixture
def small_cifar(cifar10_train, tmp_path, monkeypatch):
    """30 real images of each class in a fresh image folder; stores cached under tmp."""
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cifar-small"
    for class_dir in sorted(cifar10_train.iterdir()):
        (folder / class_dir.name).mkdir(parents=True)
        for image in sorted(class_dir.iterdir())[:30]:
            shutil.copy(image, folder / class_dir.name / image.name)
    return folder


def test_relu_vs_tanh_quick_writes_results_and_figure(small_cifar, tmp_path, capsys):
    out = tmp_path / "relu-vs-tanh"
    code = main(["experiment", "relu-vs-tanh", "--quick", "--data", str(small_cifar),
                 "--out", str(out), "--json"])
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    assert results == json.loads((out / "results.json").read_text())
    for activation in ("relu", "tanh"):
        network = results["networks"][activation]
        assert network["lr"] in (0.0001, 0.0003) and len(network["sweep"]) == 2
        assert 1 <= len(network["train_error"]) <= 2
        assert all(0 <= e <= 1 for e in network["train_error"])
        assert network["command"].startswith("alexnet train --recipe cifar10")
        assert f"model.activation={activation}" in network["command"]
        assert "model.init=cuda-convnet" in network["command"]
    with Image.open(out / "relu-vs-tanh.png") as figure:
        assert figure.size == (600, 480)
        assert len(np.unique(np.asarray(figure.convert("L")))) > 2  # lines drawn, not blank
    # A rerun continues the finished runs instead of training again, and still reads each
    # swept lr's error after the sweep's epochs (not after the winner's longer training).
    assert main(["experiment", "relu-vs-tanh", "--quick", "--data", str(small_cifar),
                 "--out", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    for activation in ("relu", "tanh"):
        assert again["networks"][activation]["sweep"] == results["networks"][activation]["sweep"]


def test_lrn_quick_reports_both_comparisons(small_cifar, tmp_path, capsys):
    out = tmp_path / "lrn"
    assert main(["experiment", "lrn", "--quick", "--data", str(small_cifar), "--out", str(out),
                 "--json"]) == 0
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert list(results["variants"]) == ["11% net", "11% net without its norms", "13% net"]
    for variant in results["variants"].values():
        assert variant["views"] == "ten" and variant["top1_error"]["n"] == 1
        assert 0 <= variant["top1_error"]["mean"] <= 1
        assert variant["runs"][0]["images"] == 30  # 3 of each class's 30: at most a tenth
        assert len(variant["runs"][0]["center_curve"]) == 1   # one epoch
    runs = {arm: v["runs"][0]["command"] for arm, v in results["variants"].items()}
    assert "model.lrn=false" in runs["11% net without its norms"]
    assert "--recipe cifar10 " in runs["13% net"] and "model=cifar-conv-local-13pct" in runs["13% net"]
    comparisons = results["comparisons"]
    assert list(comparisons) == ["paper: 13% file -> 11% file",
                                 "ablation: 11% net without -> with its norms"]
    paper = comparisons["paper: 13% file -> 11% file"]
    assert paper["difference_top1"] == pytest.approx(
        results["variants"]["13% net"]["top1_error"]["mean"]
        - results["variants"]["11% net"]["top1_error"]["mean"])
    assert "paper: 13% file -> 11% file" in captured.err
    assert (out / "lrn.png").is_file()


@pytest.mark.parametrize("recipe", ["cifar10", "cifar10-11pct"])
def test_the_13pct_arm_keeps_its_own_files_layer_params(recipe):
    from alexnet.experiments.ablations import ARMS
    from alexnet.experiments.common import make_config

    model, options, settings = ARMS["lrn"]["13% net"]
    config = make_config(recipe, "data", [], model=model, **settings)
    assert config.layer_decay_map()["classifier"] == 0.004
    assert make_config(recipe, "data", []).layer_decay_map()["classifier"] == 0.01


def test_experiments_keep_the_held_out_images_out_for_the_whole_run(capsys, monkeypatch):
    """cifar10-11pct trains on its held-out images from epoch 351 (cuda-convnet's fold-in);
    an experiment comparing their errors keeps them out, says so, and refuses a fold-in."""
    from alexnet.errors import UserError
    from alexnet.experiments import ablations
    from alexnet.experiments.common import make_config
    from alexnet.experiments.runner import Experiment, run_experiment
    from alexnet.recipes import resolve_config

    assert resolve_config("cifar10-11pct", []).fold_in_epoch == 350
    config = make_config("cifar10-11pct", "data", [])
    assert config.fold_in_epoch == 0 and config.epochs == 520 and config.val_per_class > 0
    with pytest.raises(UserError, match="fold_in_epoch=350 would train on the held-out"):
        make_config("cifar10-11pct", "data", ["fold_in_epoch=350"])
    # no images held out, nothing to protect: the fold-in is the user's to set
    assert make_config("cifar10", "data", ["fold_in_epoch=3", "val_per_class=0"]).fold_in_epoch == 3

    monkeypatch.setattr(ablations, "run_ablation", lambda *a, **k: None)
    run_experiment(Experiment("lrn", "data", "out", recipe="cifar10-11pct"))
    assert "keeps them out for every epoch" in capsys.readouterr().err
    run_experiment(Experiment("lrn", "data", "out"))
    assert "fold_in_epoch" not in capsys.readouterr().err


def test_epochs_to_target_and_spread():
    history = [{"epoch": 1, "train_top1_error": 0.6}, {"epoch": 2, "train_top1_error": 0.25},
               {"epoch": 3, "train_top1_error": 0.2}]
    assert epochs_to(history, 0.25) == 2
    assert epochs_to(history, 0.1) is None
    spread = mean_and_spread([0.1, 0.2, 0.3])
    assert spread["mean"] == pytest.approx(0.2) and spread["std"] == pytest.approx(0.1)
    assert mean_and_spread([0.5])["std"] is None   # one value has no spread (JSON null)


def test_unknown_experiment_and_bad_lrs_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "dropout", "--data", str(tmp_path)])
    assert exit_info.value.code == 2
    assert main(["experiment", "relu-vs-tanh", "--data", str(tmp_path), "--lrs", "fast"]) == 2
    assert "--lrs 'fast'" in capsys.readouterr().err


def test_quick_settings_are_the_librarys(tmp_path, monkeypatch):
    """`--quick` means the same from the command line and from Python."""
    from alexnet.experiments import ablations, relu_vs_tanh
    from alexnet.experiments.runner import QUICK_PER_CLASS, Experiment, run_experiment

    calls = {}
    monkeypatch.setattr(ablations, "run_ablation", lambda *a, **k: calls.update(ablation=(a, k)))
    monkeypatch.setattr(relu_vs_tanh, "run_relu_vs_tanh", lambda *a: calls.update(relu=a))
    run_experiment(Experiment("lrn", "data", tmp_path, seeds=5, quick=True,
                              overrides=("lr=0.1",)))
    (name, data, out, seeds, per_class, overrides), options = calls["ablation"]
    assert (seeds, per_class, options) == (1, QUICK_PER_CLASS,
                                           {"recipe": "cifar10", "arms": None})
    assert overrides == ["epochs=1", "val_per_class=10", "batch_size=50", "lr=0.1"]
    run_experiment(Experiment("relu-vs-tanh", "data", tmp_path, lrs="0.1,0.2,0.3", quick=True))
    _, _, lrs, sweep_epochs, max_epochs, per_class, overrides = calls["relu"]
    assert (lrs, sweep_epochs, max_epochs, per_class) == ([0.1, 0.2], 1, 2, QUICK_PER_CLASS)
    assert overrides == ["batch_size=50"]        # the sweep sets epochs and holds none out


def test_arms_train_apart_and_the_run_with_every_arm_compares(tmp_path, monkeypatch, capsys):
    """`--arm` trains only the arms named (by name or run-folder name), writes no partial
    results; the run with every arm (reading finished runs) writes the comparisons."""
    from alexnet.errors import UserError
    from alexnet.experiments import ablations

    assert ablations.pick_arms("lrn", None) == list(ablations.ARMS["lrn"])
    assert ablations.pick_arms("lrn", ["13% net", "11pct-net-without-its-norms"]) == \
        ["11% net without its norms", "13% net"]       # the experiment's order
    with pytest.raises(UserError, match="unknown lrn arm '11pct-no-norms'.*11pct-net-without"):
        ablations.pick_arms("lrn", ["11pct-no-norms"])

    trained = []

    def fake_arm(name, arm, recipe, data, out, seeds, overrides):
        trained.append(arm)
        error = {"11% net": 0.11, "11% net without its norms": 0.12, "13% net": 0.13}[arm]
        return {"runs": [{"top1_error": error, "center_curve": []}],
                "top1_error": mean_and_spread([error])}

    monkeypatch.setattr(ablations, "run_arm", fake_arm)
    out = tmp_path / "lrn"
    partial = ablations.run_ablation("lrn", "data", out, 1, arms=["13pct-net"])
    assert trained == ["13% net"] and list(partial["variants"]) == ["13% net"]
    assert partial["comparisons"] == {}
    assert not (out / "results.json").exists()
    assert "without --arm for the comparisons" in capsys.readouterr().err
    results = ablations.run_ablation("lrn", "data", out, 1)
    assert trained[1:] == list(ablations.ARMS["lrn"])
    paper = results["comparisons"]["paper: 13% file -> 11% file"]
    assert paper["difference_top1"] == pytest.approx(0.02)
    assert json.loads((out / "results.json").read_text())["comparisons"]


def test_arm_is_refused_where_an_experiment_has_no_arms(tmp_path, capsys):
    assert main(["experiment", "relu-vs-tanh", "--data", str(tmp_path), "--arm", "relu"]) == 2
    assert "--arm is for the experiments with arms" in capsys.readouterr().err
