"""How much a trained network's LRN layers change their inputs (a maintainer's check).

    python tools/lrn_activity.py --data IMAGES RUN_OR_CHECKPOINT [...] [--json]

For 500 images (every 100th of the store), the relative change |x - norm(x)| / |x| at each
cross-map norm and the mean |x| it sees: near 0 the layer does nothing. cuda-convnet's
CIFAR nets see 0-255 pixels; with std-scaled inputs the activations, and the norms' effect,
are smaller by orders of magnitude.
"""

from __future__ import annotations

import argparse
import json

import torch


def lrn_activity(checkpoint: str, data: str, every: int = 100) -> dict:
    from alexnet.data import ensure_store
    from alexnet.data.views import center_view
    from alexnet.engine.checkpoint import load_model
    from alexnet.engine.evaluate import iterate_images
    from alexnet.models.layers import LocalResponseNorm

    loaded = load_model(checkpoint)
    model = loaded.model.eval()
    store = ensure_store(data, loaded.preprocessing.size)
    images, _ = next(iterate_images(store.images, store.labels,
                                    list(range(0, len(store), every)), len(store)))
    effects = {}

    def record(name):
        def hook(module, inputs, output):
            # what the norm normalises: its input, after the ReLU that a relu_first norm
            # applies itself (and a no-op where a ReLU module came before)
            x = inputs[0].float().clamp_min(0)
            effects[name] = {"relative_change": ((x - output.float()).norm() / x.norm()).item(),
                             "mean_abs_input": x.abs().mean().item()}
        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in model.named_modules()
             if isinstance(m, LocalResponseNorm)]
    with torch.no_grad():
        model(center_view(images, loaded.preprocessing))
    for hook in hooks:
        hook.remove()
    return {"checkpoint": str(loaded.path), "images": len(images), "norms": effects}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", required=True)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reports = [lrn_activity(c, args.data) for c in args.checkpoints]
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for r in reports:
            print(r["checkpoint"], {k: f"{v['relative_change']:.3f} (|x| {v['mean_abs_input']:.2f})"
                                    for k, v in r["norms"].items()})
