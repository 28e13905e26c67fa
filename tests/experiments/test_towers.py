"""`alexnet experiment towers`: the --quick path end to end on the tiny store (real CIFAR-10
images when ../shared/data has them, generated ones otherwise), what it writes, and that a
rerun skips the finished runs. The numbers of so short a run mean nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from alexnet.cli import main
from alexnet.experiments import towers
from alexnet.experiments.runner import QUICK_PER_CLASS, Experiment, run_experiment


@pytest.fixture(scope="module")
def quick(tiny_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("towers") / "out"
    code = main(["experiment", "towers", "--quick", "--data", str(tiny_store), "--out", str(out),
                 "--threads", "1", "--json"])
    assert code == 0
    return out


def test_quick_writes_every_runs_scores_errors_and_commands(quick):
    results = json.loads((quick / "results.json").read_text())
    assert list(results["arms"]) == ["split", "cross", "one-tower"]
    assert results["seeds"] == 2 and results["epochs"] == 2 and results["git"]["commit"]
    assert results["command"].startswith("alexnet experiment towers --data ")
    for name, arm in results["arms"].items():
        assert [run["seed"] for run in arm["runs"]] == [0, 1]
        for run in arm["runs"]:
            assert len(run["per_kernel"]) == 64 and len(run["initial_per_kernel"]) == 64
            assert run["gap"] == pytest.approx(abs(run["a"]["mean"] - run["b"]["mean"]),
                                               abs=2e-4)
            assert run["a"]["min"] <= run["a"]["q1"] <= run["a"]["median"] <= run["a"]["max"]
            assert set(run["held_out"]) == {"ten", "center"}
            assert 0 <= run["held_out"]["ten"]["top1_error"] <= 1
            assert sorted(map(int, run["by_epoch"])) == [0, 1, 2]   # initial + 2 epochs
            assert 0 < run["relabel_p"] <= 1
            assert run["specialised"] == (run["gap"] > results["threshold"]["value"])
            assert "model=cifar-towers" in run["command"]
            assert (f"seed={run['seed']}" in run["command"]) == (run["seed"] != 0)  # 0: default
            scores = json.loads((quick / f"{name}-seed{run['seed']}" /
                                 towers.SCORES_FILE).read_text())["epochs"]
            assert scores["2"] == pytest.approx(run["per_kernel"], abs=1e-4)
        assert arm["specialised"]["of"] == 2 and arm["gap"]["n"] == 2
        assert 0 < arm["mean_gap_p"] <= 1
    assert "model.cross_tower=true" in results["arms"]["cross"]["runs"][0]["command"]
    assert "model.towers=1" in results["arms"]["one-tower"]["runs"][1]["command"]
    limit = results["threshold"]
    assert limit["value"] == max(limit["trained_quantile"], limit["initial_quantile"])
    assert "99th percentile" in limit["rule"] and limit["justification"]
    assert results["null"]["trained"]["samples"] == 2 * 2000


def test_quick_draws_the_three_figures(quick):
    for name in ("towers-kernels.png", "towers-gaps.png", "towers-timeline.png"):
        with Image.open(quick / name) as figure:
            pixels = np.asarray(figure.convert("L"))
        assert pixels.shape[0] > 300 and len(np.unique(pixels)) > 10, name   # drawn, not blank


def test_a_rerun_skips_the_finished_runs(quick, tiny_store, monkeypatch, capsys):
    import alexnet.engine.train as engine

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(engine, "train", refuse)
    before = json.loads((quick / "results.json").read_text())
    assert main(["experiment", "towers", "--quick", "--data", str(tiny_store), "--out",
                 str(quick), "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "towers: split seed 1: conv1 colour specificity tower a" in err   # per-seed gaps
    after = json.loads((quick / "results.json").read_text())
    assert after["arms"] == before["arms"] and after["threshold"] == before["threshold"]


def test_towers_settings_full_and_quick(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(towers, "run_towers", lambda *a, **k: calls.append((a, k)))
    run_experiment(Experiment("towers", "data", tmp_path, overrides=("epochs=30",)))
    run_experiment(Experiment("towers", "data", tmp_path, quick=True, overrides=("lr=0.1",)))
    (_, _, seeds, per_class, overrides), options = calls[0]
    assert (seeds, per_class, overrides, options) == (8, None, ["epochs=30"],
                                                      {"recipe": "cifar10"})
    (_, _, seeds, per_class, overrides), _ = calls[1]
    assert (seeds, per_class) == (2, QUICK_PER_CLASS)
    assert overrides == ["epochs=1", "val_per_class=10", "batch_size=50", "epochs=2", "lr=0.1"]
