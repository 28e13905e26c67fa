"""The paper's two-tower network: layer sizes, parameters, towers, initialisation."""

import pytest
import torch

from alexnet.models import build_model, count_parameters


def feature_shapes(model, size=224):
    shapes = {}
    x = torch.zeros(1, 3, size, size)
    for name, layer in model.features.named_children():
        x = layer(x)
        shapes[name] = tuple(x.shape[1:])
    return shapes


def on_meta(name: str, **options):
    """A network built without memory for its weights: for its shapes and options only."""
    with torch.device("meta"):
        return build_model(name, **options)


def test_parameter_count_is_the_papers(paper_model):
    assert count_parameters(paper_model) == 60_965_224


def test_map_sizes_at_every_layer(paper_model):
    shapes = feature_shapes(paper_model)
    assert shapes["conv1"] == (96, 55, 55)
    assert shapes["pool1"] == (96, 27, 27)
    assert shapes["conv2"] == (256, 27, 27)
    assert shapes["pool2"] == (256, 13, 13)
    assert shapes["conv3"] == (384, 13, 13)
    assert shapes["conv4"] == (384, 13, 13)
    assert shapes["conv5"] == (256, 13, 13)
    assert shapes["pool5"] == (256, 6, 6)


def test_non_overlapping_pool_keeps_sizes():
    shapes = feature_shapes(build_model("alexnet-paper", overlap_pool=False))
    assert (shapes["pool1"], shapes["pool2"], shapes["pool5"]) == \
        ((96, 27, 27), (256, 13, 13), (256, 6, 6))
    pool = on_meta("alexnet-paper", overlap_pool=False).features.pool1
    assert (pool.kernel_size, pool.stride) == (2, 2)


def outputs_after_perturbing_conv1(model, channel):
    """conv2 and conv3 outputs with and without a change to one conv1 output channel."""
    captured, delta = {}, {"on": False}

    def perturb(module, inputs, output):
        if delta["on"]:
            output = output.clone()
            output[:, channel] += 5.0
            return output

    def keep(name):
        return lambda module, inputs, output: captured.__setitem__(name, output.detach().clone())

    model.features.conv1.register_forward_hook(perturb)
    model.features.conv2.register_forward_hook(keep("conv2"))
    model.features.conv3.register_forward_hook(keep("conv3"))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        model(x)
        before = dict(captured)
        delta["on"] = True
        model(x)
    return before, captured


def test_towers_are_separate_until_conv3():
    torch.manual_seed(0)
    model = build_model("alexnet-paper", init="pytorch").eval()
    before, after = outputs_after_perturbing_conv1(model, channel=0)  # a tower-a kernel
    conv2_change = (after["conv2"] - before["conv2"]).abs().amax(dim=(0, 2, 3))
    assert conv2_change[:128].max() > 0          # tower a's conv2 sees it
    assert conv2_change[128:].max() == 0         # tower b's conv2 cannot
    conv3_change = (after["conv3"] - before["conv3"]).abs().amax(dim=(0, 2, 3))
    assert conv3_change[:192].max() > 0 and conv3_change[192:].max() > 0  # both towers


def test_cross_tower_lets_conv2_read_both():
    torch.manual_seed(0)
    model = build_model("alexnet-paper", cross_tower=True, init="pytorch").eval()
    before, after = outputs_after_perturbing_conv1(model, channel=0)
    assert (after["conv2"] - before["conv2"])[:, 128:].abs().max() > 0
    assert model.features.conv2.groups == 1 and model.features.norm1.groups == 1


def test_one_tower_has_half_the_kernels_but_full_conv5_and_fc():
    model = build_model("alexnet-paper", towers=1)
    widths = [getattr(model.features, n).out_channels for n in ("conv1", "conv2", "conv3", "conv4",
                                                        "conv5")]
    assert widths == [48, 128, 192, 192, 256]
    assert model.classifier.fc6.out_features == 4096
    assert feature_shapes(model)["pool5"] == (256, 6, 6)


def test_lrn_options(paper_model):
    norm = paper_model.features.norm1
    assert (norm.size, norm.alpha, norm.beta, norm.k, norm.groups) == (5, 1e-4, 0.75, 2.0, 2)
    assert norm.term_weight == pytest.approx(2e-5)
    literal = on_meta("alexnet-paper", lrn_alpha_per_term=False).features.norm2
    assert literal.term_weight == pytest.approx(1e-4)
    without = on_meta("alexnet-paper", lrn=False)
    assert not hasattr(without.features, "norm1") and hasattr(without.features, "relu1")
    assert count_parameters(without) == 60_965_224  # LRN has no parameters


def test_paper_initialisation():
    torch.manual_seed(0)
    model = build_model("alexnet-paper")
    layers = {**dict(model.features.named_children()), **dict(model.classifier.named_children())}
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        weight, bias = layers[name].weight, layers[name].bias
        assert weight.mean().abs() < 1e-3
        assert weight.std().item() == pytest.approx(0.01, rel=0.05)
        expected = 1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        assert torch.all(bias == expected), name


def test_pytorch_initialisation_option():
    torch.manual_seed(0)
    model = build_model("alexnet-paper", init="pytorch")
    assert not torch.all(model.features.conv2.bias == 1.0)
    assert model.features.conv1.weight.std() > 0.02  # kaiming-uniform, fan-in 363


def test_head_splits_at_fc7():
    model = build_model("alexnet-paper", num_classes=7).eval()
    x = torch.randn(2, 3, 224, 224)
    features = model.forward_features(x)
    assert features.shape == (2, 256, 6, 6)
    fc7 = model.forward_head(features, pre_logits=True)
    assert fc7.shape == (2, 4096) and (fc7 >= 0).all()  # after fc7's ReLU
    logits = model.forward_head(features)
    assert logits.shape == (2, 7)
    torch.testing.assert_close(logits, model(x))
    torch.testing.assert_close(logits, model.classifier.fc8(fc7))
