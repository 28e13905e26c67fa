"""The paper's optimiser against a hand-written update, parameter groups, schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from alexnet.engine.optim import PaperSGD, build_optimizer, parameter_groups, set_lr
from alexnet.engine.schedule import Plateau, Schedule, cosine_factor, step_factor
from alexnet.models import build_model


def test_paper_sgd_matches_hand_written_update_across_an_lr_drop():
    torch.manual_seed(0)
    w = torch.randn(5, 3, requires_grad=True)
    grads = [torch.randn(5, 3) for _ in range(6)]
    lrs = [0.01, 0.01, 0.01, 0.001, 0.001, 0.001]      # a 10x drop after three steps
    m, wd = 0.9, 5e-4
    opt = PaperSGD([w], lr=lrs[0], momentum=m, weight_decay=wd)

    ref_w, ref_v = w.detach().clone().double(), torch.zeros(5, 3, dtype=torch.float64)
    for g, lr in zip(grads, lrs, strict=True):
        ref_v = m * ref_v - wd * lr * ref_w - lr * g.double()   # paper §5
        ref_w = ref_w + ref_v
        for group in opt.param_groups:
            group["lr"] = lr
        w.grad = g.clone()
        opt.step()
    torch.testing.assert_close(w.detach().double(), ref_w, rtol=0, atol=1e-6)

    # PyTorch's SGD rescales the whole velocity at the drop, so it ends elsewhere.
    w2 = w.detach().clone().requires_grad_(True)
    torch.manual_seed(0)
    w2.data = torch.randn(5, 3)
    sgd = torch.optim.SGD([w2], lr=lrs[0], momentum=m, weight_decay=wd)
    for g, lr in zip(grads, lrs, strict=True):
        sgd.param_groups[0]["lr"] = lr
        w2.grad = g.clone()
        sgd.step()
    assert (w2.detach().double() - ref_w).abs().max() > 1e-4


def test_paper_sgd_equals_pytorch_sgd_at_constant_lr():
    torch.manual_seed(1)
    a = torch.randn(4, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    pa = PaperSGD([a], lr=0.05, momentum=0.9, weight_decay=0.0)
    pb = torch.optim.SGD([b], lr=0.05, momentum=0.9)
    for _ in range(5):
        g = torch.randn(4)
        a.grad, b.grad = g.clone(), g.clone()
        pa.step()
        pb.step()
    torch.testing.assert_close(a, b)


def test_parameter_groups_give_biases_twice_the_lr_and_no_decay():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 2))
    groups = parameter_groups(model, lr=0.01, weight_decay=5e-4, bias_lr_mult=2.0,
                              bias_weight_decay=0.0, layer_decay={"0.": 0.0})
    by_size = {sum(p.numel() for p in g["params"]): g for g in groups}
    biases = by_size[4 + 2]
    assert biases["lr"] == pytest.approx(0.02) and biases["weight_decay"] == 0.0
    conv = by_size[4 * 3 * 3 * 3]
    assert conv["weight_decay"] == 0.0 and conv["lr"] == pytest.approx(0.01)
    fc = by_size[8]
    assert fc["weight_decay"] == 5e-4
    opt = build_optimizer("paper", groups, 0.01, 0.9, 5e-4)
    set_lr(opt, 0.01, 0.1)
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx([0.001, 0.001, 0.002])


def test_a_multi_dimensional_bias_is_a_bias_and_layers_get_their_own_decay():
    # The locally connected layers' unshared biases are [C, H, W]: still biases.
    model = build_model("cifar-conv-local")
    groups = parameter_groups(model, lr=1e-3, weight_decay=4e-3, bias_lr_mult=2.0,
                              bias_weight_decay=0.0,
                              layer_decay={"features.conv": 0.0, "classifier": 0.01})
    names = {id(p): n for n, p in model.named_parameters()}
    treatment = {names[id(p)]: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert model.features.local3.bias.ndim == 3
    for layer in ("conv1", "conv2", "local3", "local4"):
        assert treatment[f"features.{layer}.bias"] == (pytest.approx(2e-3), 0.0)
    assert treatment["classifier.bias"] == (pytest.approx(2e-3), 0.0)
    assert treatment["features.conv1.weight"] == (1e-3, 0.0)
    assert treatment["features.local3.weight"] == (1e-3, 4e-3)
    assert treatment["classifier.weight"] == (1e-3, 0.01)


def test_schedules():
    assert step_factor(29, 30) == 1 and step_factor(30, 30) == pytest.approx(0.1)
    assert cosine_factor(0) == 1 and cosine_factor(1) == pytest.approx(0)
    s = Schedule("cosine", epochs=10, warmup_epochs=1)
    assert s.factor(0, 0.5) < 0.6 and s.factor(5, 0.0) == pytest.approx(0.5)
    m = Schedule("multistep", milestones=(2, 4))
    assert [m.factor(e) for e in range(5)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_plateau_drops_at_most_three_times_and_round_trips_its_state():
    p = Plateau(patience=1, max_drops=3)
    errors = [0.5, 0.4, 0.4, 0.39, 0.39, 0.39, 0.39, 0.39]
    drops = [p.update(e) for e in errors]
    assert drops == [False, False, True, False, True, True, False, False]
    assert p.factor == pytest.approx(0.001)
    s = Schedule("plateau")
    s.plateau.update(0.3)
    state = s.state_dict()
    t = Schedule("plateau")
    t.load_state_dict(state)
    assert t.plateau.best == 0.3 and not math.isinf(t.plateau.best)


def test_plateau_watches_validation_error_else_training_loss():
    from alexnet.engine.train import plateau_target

    stats = {"train_loss": 6.9, "train_top1_error": 1.0}
    assert plateau_target({"top1_error": 0.4, "top5_error": 0.2}, stats) == 0.4
    assert plateau_target({}, stats) == 6.9  # not the 100% training error
