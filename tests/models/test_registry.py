"""The registry, torchvision interchangeability, the CIFAR nets and the `models` command."""

import copy
import json
import os
import subprocess
import sys

import pytest
import torch
import torchvision
from torch import nn

from alexnet.cli import main
from alexnet.errors import UserError
from alexnet.models import build_model, count_parameters, list_models, model_spec
from alexnet.models.layers import LocalResponseNorm

NAMES = ["alexnet-paper", "alexnet-torchvision", "cifar-conv-local", "cifar-conv-local-13pct",
         "cifar-4layer", "cifar-towers"]


def test_registry_lists_the_models():
    assert list_models() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_model_runs_forward_and_backward(name):
    torch.manual_seed(0)
    size = model_spec(name).input_size
    model = build_model(name, num_classes=5)
    logits = model(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    logits.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.model_name == name and model.model_options == {"num_classes": 5}


@pytest.mark.parametrize("name", NAMES)
def test_features_and_head_compose_to_forward(name):
    size = model_spec(name).input_size
    model = build_model(name).eval()
    x = torch.randn(2, 3, size, size)
    pre_logits = model.forward_head(model.forward_features(x), pre_logits=True)
    assert pre_logits.ndim == 2
    torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x))


def test_torchvision_state_dict_round_trip_gives_identical_logits():
    torch.manual_seed(0)
    theirs = torchvision.models.alexnet(weights=None).eval()
    ours = build_model("alexnet-torchvision").eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
    back = torchvision.models.alexnet(weights=None)
    back.load_state_dict(ours.state_dict(), strict=True)
    assert count_parameters(ours) == 61_100_840


def layer_sizes(model, size=24):
    """(layer name, output channels, output side) for every layer of `features`, in order."""
    rows, x = [], torch.zeros(1, 3, size, size)
    for name, layer in model.features.named_children():
        x = layer(x)
        rows.append((name, x.shape[1], x.shape[2]))
    return rows


def test_cifar_conv_local_is_the_published_11pct_file():
    # layers-conv-local-11pct.cfg: pool1 *then* norm1, norm2 *then* pool2; 24 -> 12 -> 6;
    # conv1's and conv2's ReLUs are done inside the norms (relu_first).
    model = build_model("cifar-conv-local")
    assert layer_sizes(model) == [
        ("conv1", 64, 24), ("pool1", 64, 12), ("norm1", 64, 12),
        ("conv2", 64, 12), ("norm2", 64, 12), ("pool2", 64, 6),
        ("local3", 64, 6), ("relu3", 64, 6), ("local4", 32, 6), ("relu4", 32, 6)]
    norm = model.features.norm1
    assert (norm.size, norm.k, norm.beta, norm.term_weight) == (9, 1.0, 0.75, 1e-3 / 9)
    assert norm.relu_first and model.features.norm2.relu_first
    assert model.features.local3.weight.shape == (36, 64, 64 * 9)  # unshared per position
    assert model.features.local3.bias.shape == (64, 6, 6)
    assert model.classifier.in_features == 32 * 6 * 6
    assert count_parameters(model) == 2_112_970


def test_lrn_false_drops_the_two_norms_and_nothing_else():
    model, without = build_model("cifar-conv-local"), build_model("cifar-conv-local", lrn=False)
    assert not any(isinstance(m, LocalResponseNorm) for m in without.modules())
    # the norms' ReLUs become modules of their own, after the pools
    assert [row[0] for row in layer_sizes(without)][:6] == \
        ["conv1", "pool1", "relu1", "conv2", "pool2", "relu2"]
    assert [row for row in layer_sizes(without) if not row[0].startswith(("norm", "relu"))] \
        == [row for row in layer_sizes(model) if not row[0].startswith(("norm", "relu"))]
    assert count_parameters(without) == count_parameters(model)


def test_cifar_conv_local_13pct_is_the_published_13pct_file():
    model = build_model("cifar-conv-local-13pct")
    assert layer_sizes(model) == [
        ("conv1", 64, 24), ("pool1", 64, 12), ("relu1", 64, 12),
        ("conv2", 64, 12), ("pool2", 64, 6), ("relu2", 64, 6),
        ("local3", 32, 6), ("relu3", 32, 6), ("local4", 32, 6), ("relu4", 32, 6)]
    assert not any(isinstance(m, LocalResponseNorm) for m in model.modules())
    assert count_parameters(model) == 1_116_490
    with pytest.raises(UserError, match="lrn"):
        build_model("cifar-conv-local-13pct", lrn=True)


@pytest.mark.parametrize("name", ["cifar-conv-local", "cifar-conv-local-13pct"])
def test_cifar_conv_local_cuda_convnet_initialisation(name):
    torch.manual_seed(0)
    model = build_model(name, init="cuda-convnet")
    stds = {n: p.std().item() for n, p in model.named_parameters() if n.endswith("weight")}
    expected = {"features.conv1.weight": 1e-4, "features.conv2.weight": 1e-2,
                "features.local3.weight": 0.04, "features.local4.weight": 0.04,
                "classifier.weight": 1e-2}
    assert stds == pytest.approx(expected, rel=0.1)
    assert all(p.abs().sum() == 0 for n, p in model.named_parameters() if n.endswith("bias"))
    default = build_model(name)  # PyTorch's initialisation stays the default
    assert default.features.conv1.weight.std().item() > 1e-2


MODELS_AND_OPTIONS = [("cifar-conv-local", {}), ("cifar-conv-local", {"lrn": False}),
                      ("cifar-conv-local-13pct", {}), ("cifar-4layer", {}),
                      ("alexnet-paper", {}), ("alexnet-paper", {"lrn": False}),
                      ("alexnet-torchvision", {}), ("cifar-towers", {}),
                      ("cifar-towers", {"cross_tower": True, "lrn": False})]


@pytest.mark.parametrize("name,options", MODELS_AND_OPTIONS)
def test_the_layers_run_in_the_order_they_print_and_every_hook_fires(name, options):
    """No layer is skipped, fused or reordered at run time: a forward hook on every named
    layer fires, in the order the model prints, and features(x) is forward_features(x)."""
    size = model_spec(name).input_size
    model = build_model(name, **options).eval()
    named = [n for n, m in model.named_modules() if n and not list(m.children())]
    fired = []
    hooks = [m.register_forward_hook(lambda *_, n=n: fired.append(n))
             for n, m in model.named_modules() if n in named]
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    assert fired == named
    with torch.no_grad():
        pool = getattr(model, "avgpool", nn.Identity())
        assert torch.equal(model.forward_features(x), pool(model.features(x)))


@pytest.mark.numerics
@pytest.mark.parametrize("name,options", MODELS_AND_OPTIONS)
def test_the_built_order_computes_the_published_order(name, options):
    """ReLUs after max-pools and inside the cross-map norms compute what the published
    order (each ReLU before its pool, a ReLU module before each norm, plain PyTorch's LRN and
    locally connected forms) computes: in float64, equal to rounding (1e-10 of each
    tensor's largest value; sums of ~1e4 float64 terms differ by ~1e-13), gradients too."""
    def close(a, b):
        assert (a - b).abs().max() <= 1e-10 * b.abs().max()

    from alexnet.bench.model import plain_pytorch

    torch.manual_seed(8)
    size = model_spec(name).input_size
    model = build_model(name, **options).double()
    plain = plain_pytorch(copy.deepcopy(model))
    x = torch.randn(3 if size < 64 else 1, 3, size, size, dtype=torch.float64) * 30
    ours, published = model.forward_features(x), plain.forward_features(x)
    close(ours, published)
    grad = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad(ours, list(model.features.parameters()), grad),
                    torch.autograd.grad(published, list(plain.features.parameters()), grad),
                    strict=True):
        close(a, b)


def test_cifar_4layer_activations():
    relu = build_model("cifar-4layer")
    tanh = build_model("cifar-4layer", activation="tanh", norm=False)
    assert isinstance(relu.features.act1, torch.nn.ReLU)
    assert isinstance(tanh.features.act2, torch.nn.Tanh)
    assert isinstance(tanh.features.norm1, torch.nn.Identity)
    assert relu.forward_features(torch.zeros(1, 3, 32, 32)).shape == (1, 64, 4, 4)


def test_cifar_4layer_cuda_convnet_initialisation():
    torch.manual_seed(0)
    model = build_model("cifar-4layer", activation="tanh", init="cuda-convnet")
    stds = {name: p.std().item() for name, p in model.named_parameters() if name.endswith("weight")}
    assert stds["features.conv1.weight"] == pytest.approx(1e-4, rel=0.1)
    for name in ("features.conv2.weight", "features.conv3.weight", "classifier.weight"):
        assert stds[name] == pytest.approx(1e-2, rel=0.1)
    assert all(p.abs().sum() == 0 for n, p in model.named_parameters() if n.endswith("bias"))
    with pytest.raises(UserError, match="init"):
        build_model("cifar-4layer", init="xavier")


def test_unknown_name_option_and_value_are_user_errors():
    with pytest.raises(UserError, match="valid models: alexnet-paper, alexnet-torchvision"):
        build_model("alexnet-huge")
    with pytest.raises(UserError, match="valid options: num_classes, lrn"):
        build_model("alexnet-paper", lnr=False)
    with pytest.raises(UserError, match="towers must be 1 or 2"):
        build_model("alexnet-paper", towers=3)
    with pytest.raises(UserError, match="activation"):
        build_model("cifar-4layer", activation="sigmoid")


def test_models_command_json(capsys):
    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert list(rows) == NAMES
    assert rows["alexnet-paper"]["parameters"] == 60_965_224
    assert rows["alexnet-torchvision"]["parameters"] == 61_100_840
    assert rows["alexnet-paper"]["input_size"] == 224
    assert 1.3 < rows["alexnet-paper"]["gflops"] < 1.6  # about 0.72 G multiply-adds


@pytest.mark.parametrize("name", ["cifar-conv-local", "cifar-4layer", "alexnet-torchvision"])
def test_model_costs_count_what_the_built_model_computes(name):
    from alexnet.models import forward_flops, model_costs

    model = build_model(name)
    assert model_costs(name) == (count_parameters(model),
                                 forward_flops(model, model_spec(name).input_size))


def test_models_command_compiles_nothing_and_cuts_no_name():
    """It took 10-16 s, TorchInductor compiling the norms' kernels inside the FLOP count; a
    table of 80 columns cut the names."""
    probe = ("import sys; from alexnet.cli import main; main(['models']); "
             "print('compiled' if 'torch._inductor' in sys.modules else 'plain')")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "60"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("plain")
    for name in NAMES:
        assert f" {name} " in done.stdout, done.stdout


def test_cli_version_and_unknown_command_exit_codes():
    version = subprocess.run([sys.executable, "-m", "alexnet", "--version"],
                             capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("alexnet ")
    bad = subprocess.run([sys.executable, "-m", "alexnet", "fly"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
