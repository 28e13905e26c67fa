"""The first SGD steps of `alexnet-paper` on a prepared store: why a run does or does not learn.

    python tools/first_steps.py STORE [--init paper|pytorch] [--lr 0.01] [--steps 8]
                                      [--batch 128] [--json OUT.json]

Trains from a fresh initialisation with the imagenet-paper recipe's update rule (the paper's
SGD, momentum 0.9, weight decay 5e-4, biases 2x lr and no decay), on centre 224 crops of the
store minus its mean image (no augmentation, so that only the init and lr differ), and
prints per step: the loss, the spread of the logits and the fraction of fc7's outputs that
are zero after its ReLU. A loss that jumps far above ln(classes) and an fc7 going silent is
the failure the init experiment shows (the loss then sits at ln(classes) for good).
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
import torch.nn.functional as F

from alexnet.data import open_store
from alexnet.data.views import center_view
from alexnet.engine.optim import build_optimizer, parameter_groups
from alexnet.models import build_model


def first_steps(store_path: str, init: str, lr: float, steps: int, batch: int,
                seed: int = 0) -> list[dict]:
    torch.manual_seed(seed)
    store = open_store(store_path)
    images, labels = store.images, store.labels
    preprocessing = store.preprocessing(224)          # the mean image, as imagenet-paper
    model = build_model("alexnet-paper", num_classes=len(store.classes), init=init)
    groups = parameter_groups(model, lr, 5e-4, bias_lr_mult=2.0, bias_weight_decay=0.0)
    optimizer = build_optimizer("paper", groups, lr=lr, momentum=0.9, weight_decay=5e-4)
    fc7 = {}
    model.classifier.relu7.register_forward_hook(lambda m, i, out: fc7.update(out=out.detach()))
    rng = np.random.default_rng(seed)
    rows = []
    for step in range(steps):
        index = np.sort(rng.choice(len(store), batch, replace=False))
        x = center_view(torch.from_numpy(images[index]), preprocessing)
        y = torch.from_numpy(labels[index])
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rows.append({"step": step, "loss": round(loss.item(), 4),
                     "logit_std": round(logits.std().item(), 4),
                     "fc7_zero_fraction": round((fc7["out"] == 0).float().mean().item(), 4)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="a prepared store (alexnet prepare) of 256-pixel images")
    parser.add_argument("--init", default="paper", choices=["paper", "pytorch"])
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--json", help="also write the steps and settings to this file")
    args = parser.parse_args()
    rows = first_steps(args.store, args.init, args.lr, args.steps, args.batch)
    if args.json:
        classes = len(open_store(args.store).classes)
        report = {"store": args.store, "init": args.init, "lr": args.lr, "batch": args.batch,
                  "ln_classes": round(math.log(classes), 4), "steps": rows,
                  "threads": torch.get_num_threads(), "torch": torch.__version__}
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
