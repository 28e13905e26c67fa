"""A new run can start from stored weights (`init_weights=`): fine-tuning on other classes,
or a schedule continued in a run of its own."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from alexnet.data.normalization import Preprocessing
from alexnet.engine.checkpoint import save_weights, start_from_weights
from alexnet.errors import UserError
from alexnet.models import build_model
from helpers.runs import alexnet_env, run_alexnet


def stored(tmp_path, name="cifar-4layer", classes=10, seed=1):
    torch.manual_seed(seed)
    model = build_model(name, num_classes=classes)
    path = tmp_path / f"{name}-{classes}.safetensors"
    save_weights(path, model, classes=[f"c{i}" for i in range(classes)],
                 preprocessing=Preprocessing(size=32, crop=model.input_size))
    return path, model.state_dict()


def test_matching_tensors_are_copied_and_another_classifier_keeps_its_init(tmp_path):
    path, weights = stored(tmp_path, classes=10)
    torch.manual_seed(2)
    model = build_model("cifar-4layer", num_classes=4)
    own = {k: v.clone() for k, v in model.state_dict().items()}
    kept = start_from_weights(model, path)
    assert kept and all(own[k].shape != weights[k].shape for k in kept)
    for key, value in model.state_dict().items():
        assert torch.equal(value, own[key] if key in kept else weights[key]), key


def test_weights_of_another_network_are_refused(tmp_path):
    path, _ = stored(tmp_path, name="cifar-4layer")
    with pytest.raises(UserError, match="holds a cifar-4layer network, not the run's"):
        start_from_weights(build_model("cifar-conv-local-13pct"), path)


def test_a_run_starts_from_them_and_resumes_without_them(tiny_store, tmp_path):
    path, weights = stored(tmp_path, classes=10)
    out, env = tmp_path / "run", alexnet_env(tmp_path)
    # lr so small that one epoch leaves the copied weights where they were
    args = ["train", "--data", str(tiny_store), "--out", str(out), "model=cifar-4layer",
            f"init_weights={path}", "epochs=1", "lr=1e-12", "val_per_class=5",
            "batch_size=32", "eval_views=center"]
    done = run_alexnet(args, env)
    assert done.returncode == 0, done.stderr
    assert "keep their own initialisation" in done.stderr + done.stdout
    trained = load_file(out / "last.safetensors")
    assert torch.allclose(trained["features.conv1.weight"], weights["features.conv1.weight"],
                          atol=1e-6)
    path.unlink()   # a continued run takes its weights from its own state
    done = run_alexnet(["train", "--out", str(out), "epochs=2"], env)
    assert done.returncode == 0, done.stderr
