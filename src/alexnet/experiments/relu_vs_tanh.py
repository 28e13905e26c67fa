"""The paper's Fig. 1: a four-layer net with ReLUs reaches 25% training error on CIFAR-10
about six times sooner (in epochs) than the same net with tanh.

As in the paper: no regularisation of any kind (no weight decay, no dropout, no crops or
flips: the whole 32x32 image), and each activation's learning rate chosen separately to
train as fast as possible, by a small sweep on training error alone. The network is
cuda-convnet's layers-18pct shape (`cifar-4layer`) without its normalisation layers, so the
activation is the only difference, set up as cuda-convnet ran it: its layer file's Gaussian
initialisation (`init=cuda-convnet`) and mean-subtracted pixels on the 0-255 scale
(`normalize=mean-image`). Both matter to tanh, which saturates on large inputs; overriding
them (`model.init=pytorch normalize=mean-image-std`) gives the modern setup instead. Training
error is the running error of each epoch on the training images, the number cuda-convnet
printed.
"""

from __future__ import annotations

from pathlib import Path

from alexnet import console
from alexnet.analysis import plots  # its functions looked up at each call: tests inspect them
from alexnet.errors import UserError
from alexnet.experiments.common import (
    command_line,
    experiment_store,
    make_config,
    save_results,
    train_until,
)

TARGET = 0.25


def config_for(activation: str, lr: float, data: str, epochs: int, overrides: list[str]):
    return make_config(
        "cifar10", data, overrides, model="cifar-4layer",
        model_options={"activation": activation, "norm": False, "init": "cuda-convnet"},
        normalize="mean-image", data_size=32, crop=32,
        flip=False, lighting_std=0.0, weight_decay=0.0, bias_weight_decay=0.0,
        bias_lr_mult=1.0, layer_decay=(), schedule="constant", warmup_epochs=0.0,
        val_per_class=0, eval_views="center", lr=lr, epochs=epochs)


def epochs_to(history: list[dict], target: float) -> int | None:
    for row in history:
        if row["train_top1_error"] <= target:
            return int(row["epoch"])
    return None


def sweep(activation: str, lrs: list[float], data: str, out: Path, sweep_epochs: int,
          overrides: list[str]) -> tuple[float, list[dict]]:
    """Train each lr for `sweep_epochs`; the lr with the lowest training error wins."""
    trials = []
    for lr in lrs:
        run = out / f"{activation}-lr{lr:g}"
        try:
            history = train_until(config_for(activation, lr, data, sweep_epochs, overrides), run)
            # the error after `sweep_epochs`, also when a rerun finds the winner trained on
            error = history[sweep_epochs - 1]["train_top1_error"]
        except UserError as err:  # diverged at this lr: too large, not a failure
            console.info(f"{activation} lr={lr:g}: {err}")
            error = float("inf")
        trials.append({"lr": lr, "train_error": error, "run": str(run)})
        console.info(f"sweep {activation} lr={lr:g}: training error {error:.4f} after "
                     f"{console.plural(sweep_epochs, 'epoch')}")
    best = min(trials, key=lambda t: t["train_error"])
    if best["train_error"] == float("inf"):
        raise UserError(f"{activation} diverged at every swept lr ({lrs}); pass smaller --lrs")
    if len(lrs) > 1 and best["lr"] in (min(lrs), max(lrs)):
        console.info(f"warning: {activation}'s best lr {best['lr']:g} is at the edge of the "
                     f"sweep; widen --lrs to be sure it is the fastest")
    return best["lr"], trials


def run_relu_vs_tanh(data: str, out: Path, lrs: list[float], sweep_epochs: int,
                     max_epochs: int, quick_per_class: int | None = None,
                     overrides: list[str] | None = None) -> dict:
    overrides = overrides or []
    out.mkdir(parents=True, exist_ok=True)
    data = experiment_store(data, out, 32, quick_per_class)
    results = {"experiment": "relu-vs-tanh", "target_train_error": TARGET, "data": data,
               "networks": {}}
    for activation in ("relu", "tanh"):
        lr, trials = sweep(activation, lrs, data, out, sweep_epochs, overrides)
        config = config_for(activation, lr, data, max_epochs, overrides)
        run = out / f"{activation}-lr{lr:g}"  # the winning sweep run trains on
        history = train_until(config, run, lambda h: epochs_to(h, TARGET) is not None)
        reached = epochs_to(history, TARGET)
        results["networks"][activation] = {
            "lr": lr, "sweep": trials, "epochs_to_target": reached,
            "train_error": [row["train_top1_error"] for row in history],
            "command": command_line(config, run)}
        console.info(f"{activation}: lr {lr:g}, 25% training error "
                     + (f"after {console.plural(reached, 'epoch')}" if reached else
                        f"not reached in {console.plural(len(history), 'epoch')}"))
    relu, tanh = (results["networks"][a]["epochs_to_target"] for a in ("relu", "tanh"))
    results["ratio_tanh_over_relu"] = tanh / relu if relu and tanh else None
    if relu and not tanh:   # tanh gave up at max_epochs: the ratio is at least this
        results["ratio_tanh_over_relu_at_least"] = \
            len(results["networks"]["tanh"]["train_error"]) / relu
    ratio = results["ratio_tanh_over_relu"] or results.get("ratio_tanh_over_relu_at_least")
    if ratio:
        console.info(f"tanh needed {'' if tanh else 'more than '}{ratio:.1f}x the epochs ReLU "
                     f"needed (the paper: 6x)")
    results["figure"] = str(plot(results, out / "relu-vs-tanh.png"))
    console.info(f"figure: {results['figure']}")
    save_results(out, results)
    return results


def plot(results: dict, path: Path) -> Path:
    """Training error against epochs: ReLU solid, tanh dashed, the 25% line dotted."""
    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    highest = 0.0
    for activation, style in (("relu", "-"), ("tanh", "--")):
        errors = results["networks"][activation]["train_error"]
        highest = max([highest, *errors])
        ax.plot(range(1, len(errors) + 1), errors, style, color="black",
                marker="o" if len(errors) < 15 else None, markersize=3,   # a short run: points
                label=f"{activation} (lr {results['networks'][activation]['lr']:g})")
    ax.axhline(TARGET, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("epochs")
    ax.set_ylabel("training error rate")
    # The paper's axis (0-0.75) fits a full run; a short one (--quick) starts near 0.9.
    ax.set_ylim(0, max(0.8, min(1.0, highest) + 0.05))
    ax.set_title("CIFAR-10, four-layer net: ReLU vs tanh")
    ax.legend()
    fig.tight_layout()
    return plots.save_figure(fig, path, dpi=120)
