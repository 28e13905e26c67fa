"""The split of alexnet-paper into its two towers, in one process (both towers on the CPU):
the single-device weights in and out unchanged, the same function, the optimiser state in
the single-device format, and the exchange volume the layer shapes give."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from alexnet.engine import model_parallel as mp
from alexnet.errors import UserError
from alexnet.models import build_model, count_parameters, tower_exchange, towers
from helpers.towers import paper_optimizer, relative

pytestmark = pytest.mark.numerics

CLASSES = 10


@pytest.fixture(scope="module")
def full() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("alexnet-paper", num_classes=CLASSES, dropout=0.0)


def split_of(full: torch.nn.Module) -> towers.TowersOnDevices:
    return towers.split_model(full, devices=[torch.device("cpu")] * 2)


def test_towers_hold_the_single_device_weights_unchanged(full):
    split = split_of(full)
    state = full.state_dict()
    saved = towers.full_state_dict(split)
    assert list(saved) == list(state)
    assert all(torch.equal(saved[k], state[k]) for k in state)
    tower_a, tower_b = split.towers
    assert tower_a.features.conv1.weight.shape == (48, 3, 11, 11)
    assert tower_a.features.conv3.weight.shape == (192, 256, 3, 3)   # reads both towers
    assert tower_a.classifier.fc6.weight.shape == (2048, 9216)
    assert tower_a.classifier.fc8.weight.shape == (CLASSES, 2048)
    # Every weight is in exactly one tower, except fc8's bias, which both hold.
    assert count_parameters(split) == count_parameters(full) + CLASSES
    changed = {k: v + 1 for k, v in state.items()}
    towers.load_full_state_dict(split, changed)
    assert all(torch.equal(v, changed[k]) for k, v in towers.full_state_dict(split).items())


# The split must compute the single-device function exactly; only the summation order differs
# (fc8 summed in halves, convolutions blocked differently). That comparison is made in
# float64: in float32 a randomly initialised alexnet-paper on 2 images is ill-conditioned
# (a 1e-7 relative change of the input moved conv1's weight gradient by 3.4% on one CPU:
# max-pool near-ties and ReLU boundaries), so any other CPU's kernels fail a tight float32
# bound. In float64 the same input change moves every gradient by 1e-7 relative (measured:
# the function is smooth at this resolution) and the two paths agree to ~2e-15; 1e-10 leaves
# five orders of magnitude for other summation orders and still catches any real mistake,
# which moves a gradient by its own size.
EXACT = 1e-10


# One layer with a decay of its own: the split must find it by its single-device name.
LAYER_DECAY = {"features.conv1": 0.0}


@pytest.fixture(scope="module")
def stepped(full):
    """The single-device network and its split, in float64, after one forward, backward and
    optimiser step each on the same 2 images."""
    full = copy.deepcopy(full).double()      # stepped here; the fixture stays as built
    split = split_of(full)                   # the towers start from full's weights
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    y = torch.tensor([3, 7])
    ref_opt = paper_optimizer(full, LAYER_DECAY)
    opt = paper_optimizer(mp.SingleDeviceNames(split), LAYER_DECAY)
    outputs = []
    for model in (full, split):
        out = model(x)
        F.cross_entropy(out, y).backward()
        outputs.append(out.detach())
    grads = {name: p.grad.clone() for name, p in full.named_parameters()}
    tower_grads = [(name, tower, None if p.grad is None else p.grad.clone())
                   for name, tower, p in towers.tower_parameters(split)]
    ref_opt.step()
    opt.step()
    return {"full": full, "split": split, "ref_opt": ref_opt, "opt": opt, "grads": grads,
            "tower_grads": tower_grads, "outputs": outputs}


def test_one_process_split_computes_the_same_function(stepped):
    ref, out = stepped["outputs"]
    assert relative(out, ref) <= EXACT
    for name, tower, grad in stepped["tower_grads"]:
        if grad is None:   # tower b's copy of fc8's bias: added once, on tower a
            assert (name, tower) == ("classifier.fc8.bias", 1)
            continue
        want = towers.tower_piece(name, stepped["grads"][name], tower)
        assert relative(grad, want) <= EXACT, name
    # Each tower sent (forward and backward) what the layer shapes say it sends.
    split = stepped["split"]
    assert split.exchange.sent_bytes == 2 * tower_exchange.bytes_per_step(split.towers[0], 224, 2,
                                                                          itemsize=8)


def test_exchange_volume_from_the_layer_shapes(full):
    values = tower_exchange.exchanged_values(towers.Tower(full, 0), 224)
    assert values == {"conv3 gathers pool2": 128 * 13 * 13, "fc6 gathers pool5": 128 * 6 * 6,
                      "fc7 gathers fc6": 2048, "fc8 sums partial logits": CLASSES}
    # Per image and tower: 28,288 gathered values each way plus the partial logits, fp32.
    assert tower_exchange.bytes_per_step(towers.Tower(full, 0), 224, 1) == 4 * (2 * 28288 + CLASSES)


def test_optimiser_state_is_saved_as_one_device_saves_it(stepped):
    full, split, ref_opt, opt = (stepped[k] for k in ("full", "split", "ref_opt", "opt"))
    ref, saved = ref_opt.state_dict(), mp.full_optimizer_state(opt, split)
    assert saved["param_groups"] == ref["param_groups"]   # layer_decay matched by single names
    assert saved["state"].keys() == ref["state"].keys()
    for i, entry in ref["state"].items():
        assert relative(saved["state"][i]["velocity"], entry["velocity"]) <= EXACT
    fresh = paper_optimizer(mp.SingleDeviceNames(split), LAYER_DECAY)
    mp.load_full_optimizer_state(fresh, split, ref)   # a single-device state, resumed split
    for name, tower, p in towers.tower_parameters(split):
        if p.requires_grad:
            want = towers.tower_piece(name, ref_opt.state[dict(full.named_parameters())[name]]
                                      ["velocity"], tower)
            assert torch.equal(fresh.state[p]["velocity"], want), name


def test_only_the_two_tower_network_splits(capsys):
    from alexnet.cli import main
    from alexnet.recipes import resolve_config

    assert main(["train", "--recipe", "imagenet-paper", "model_parallel=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model_parallel must be 1 or 2" in err

    with pytest.raises(UserError, match="needs model=alexnet-paper"):
        resolve_config("cifar10", ["model_parallel=2"])
    with pytest.raises(UserError, match="model.towers=2 and model.cross_tower=false"):
        resolve_config("imagenet-paper", ["model_parallel=2", "model.cross_tower=true"])
    with pytest.raises(UserError, match="model_parallel must be 1 or 2"):
        resolve_config("imagenet-paper", ["model_parallel=4"])
    assert resolve_config("imagenet-paper", ["model_parallel=2"]).model_parallel == 2


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="two GPUs are there")
def test_one_process_needs_two_gpus():
    with pytest.raises(UserError, match="run one process per tower with torchrun"):
        mp.tower_devices("auto")
    assert mp.tower_devices("cpu") == [torch.device("cpu")] * 2


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpus_compute_the_same_function(full):
    """The paper's split across cuda:0 and cuda:1 (each tower's norm on its own device, the
    Triton kernel launched there), in float64 against one device, and the bytes exchanged."""
    full = copy.deepcopy(full).double()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    y = torch.tensor([3, 7])
    ref = full(x)
    F.cross_entropy(ref, y).backward()
    split = towers.split_model(full, devices=[torch.device("cuda:0"), torch.device("cuda:1")])
    out = split(x.cuda(0))
    F.cross_entropy(out, y.cuda(0)).backward()
    assert relative(out.cpu(), ref.detach()) <= EXACT
    grads = dict(full.named_parameters())
    for name, tower, p in towers.tower_parameters(split):
        if p.grad is not None:
            want = towers.tower_piece(name, grads[name].grad, tower)
            assert relative(p.grad.cpu(), want) <= EXACT, name
    assert split.exchange.sent_bytes == 2 * tower_exchange.bytes_per_step(split.towers[0], 224,
                                                                          2, itemsize=8)
