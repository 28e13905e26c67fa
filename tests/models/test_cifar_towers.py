"""`cifar-towers`: the 11% net as the paper's two towers. Its layer table and parameter
counts, that one tower of the same total width is the 11% net itself, and that the "own
tower" layers really keep the towers apart (gradients exactly zero across the boundary)."""

from __future__ import annotations

import pytest
import torch

from alexnet.analysis.filters import filter_report, tower_count
from alexnet.errors import UserError
from alexnet.models import build_model, count_parameters

HALF = 32   # conv1, conv2, local3 channels per tower; local4 has 16


def layer_table(model) -> list[tuple]:
    """(layer, output channels, side, groups) of every weighted or norm layer."""
    rows, x = [], torch.zeros(1, 3, 24, 24)
    for name, layer in model.features.named_children():
        x = layer(x)
        if not name.startswith(("relu", "pool")):
            rows.append((name, x.shape[1], x.shape[2], getattr(layer, "groups", None)))
    return rows


def test_layer_table_and_parameter_counts():
    split = build_model("cifar-towers")
    assert layer_table(split) == [("conv1", 64, 24, 1), ("norm1", 64, 12, 2),
                                  ("conv2", 64, 12, 2), ("norm2", 64, 12, 2),
                                  ("local3", 64, 6, 1), ("local4", 32, 6, 2)]
    assert split.features.conv2.weight.shape == (64, HALF, 5, 5)          # own tower
    assert split.features.local3.weight.shape == (36, 64, 9 * 64)         # both towers
    assert split.features.local4.weight.shape == (36, 32, 9 * HALF)       # own tower
    assert split.classifier.in_features == 32 * 6 * 6                     # both towers
    assert count_parameters(split) == 1_729_994
    cross = build_model("cifar-towers", cross_tower=True)
    assert [row[3] for row in layer_table(cross)] == [1, 2, 1, 2, 1, 1]   # norms per tower
    assert count_parameters(cross) == 2_112_970
    one = build_model("cifar-towers", towers=1)
    assert [row[3] for row in layer_table(one)] == [1, 1, 1, 1, 1, 1]
    assert count_parameters(one) == count_parameters(build_model("cifar-conv-local"))
    without = build_model("cifar-towers", lrn=False)
    assert not hasattr(without.features, "norm1") and hasattr(without.features, "relu1")


def test_one_tower_is_the_11pct_net():
    """towers=1 has the 11% net's layers and names: its weights load and compute the same."""
    torch.manual_seed(0)
    eleven = build_model("cifar-conv-local").eval()
    one = build_model("cifar-towers", towers=1).eval()
    one.load_state_dict(eleven.state_dict(), strict=True)
    x = torch.randn(2, 3, 24, 24) * 50
    with torch.no_grad():
        assert torch.equal(one(x), eleven(x))


def test_options_that_do_not_fit_are_user_errors():
    with pytest.raises(UserError, match="cross_tower=True needs towers=2"):
        build_model("cifar-towers", towers=1, cross_tower=True)
    with pytest.raises(UserError, match="towers must be 1 or 2"):
        build_model("cifar-towers", towers=3)
    with pytest.raises(UserError, match="init"):
        build_model("cifar-towers", init="paper")


def test_cuda_convnet_initialisation():
    torch.manual_seed(0)
    model = build_model("cifar-towers", init="cuda-convnet")
    stds = {n: p.std().item() for n, p in model.named_parameters() if n.endswith("weight")}
    assert stds == pytest.approx({"features.conv1.weight": 1e-4, "features.conv2.weight": 1e-2,
                                  "features.local3.weight": 0.04,
                                  "features.local4.weight": 0.04, "classifier.weight": 1e-2},
                                 rel=0.1)


def outputs_by_layer(model, x) -> dict[str, torch.Tensor]:
    """Each named layer's output (forward hooks: they fire for every layer of features)."""
    outputs = {}
    hooks = [layer.register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o))
             for name, layer in model.features.named_children()]
    try:
        model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


def cross_gradients(options: dict) -> dict[str, tuple[float, float]]:
    """Per layer: the largest |d (tower b's output) / d (tower a's weights)| and the reverse
    (a's output, b's weights). The weights are conv1's kernels for the layers up to local3,
    local3's rows (its output channels) for local4."""
    torch.manual_seed(1)
    model = build_model("cifar-towers", **options).to(memory_format=torch.channels_last)
    x = (torch.randn(4, 3, 24, 24) * 60).contiguous(memory_format=torch.channels_last)
    outputs = outputs_by_layer(model, x)
    conv1, local3 = model.features.conv1.weight, model.features.local3.weight
    sources = {name: (conv1, 0) for name in ("conv1", "norm1", "conv2", "norm2", "pool2",
                                             "local3")}
    sources["local4"] = (local3, 1)                    # local3's weight is [L, out, fan-in]
    result = {}
    for name, (weight, dim) in sources.items():
        out = outputs[name]
        half = out.shape[1] // 2
        b_of_a, a_of_b = (torch.autograd.grad(part.square().sum(), weight, retain_graph=True)[0]
                          for part in (out[:, half:], out[:, :half]))
        result[name] = (b_of_a.narrow(dim, 0, HALF).abs().max().item(),
                        a_of_b.narrow(dim, HALF, HALF).abs().max().item())
    return result


def test_own_tower_layers_do_not_mix_the_towers():
    split = cross_gradients({})
    for name in ("conv1", "norm1", "conv2", "norm2", "pool2", "local4"):
        assert split[name] == (0.0, 0.0), name          # exactly: no path across
    assert min(split["local3"]) > 0                     # local3 reads both towers
    cross = cross_gradients({"cross_tower": True})
    assert cross["norm1"] == (0.0, 0.0)                 # the norms stay per tower
    for name in ("conv2", "pool2", "local4"):
        assert min(cross[name]) > 0, name               # every layer reads both towers
    one = cross_gradients({"towers": 1})
    assert min(one["norm1"]) > 0                        # windows cross the old boundary


def test_filter_report_sees_the_two_towers():
    split = build_model("cifar-towers")
    report = filter_report(split)
    assert [t["name"] for t in report["towers"]] == ["a", "b"]
    a, b = report["towers"]
    assert torch.equal(a["kernels"], split.features.conv1.weight[:HALF].detach())
    assert b["kernels"].shape == (HALF, 3, 5, 5)
    assert tower_count(build_model("cifar-towers", cross_tower=True)) == 2
    assert tower_count(build_model("cifar-towers", towers=1)) == 1
