"""Subnormal floats flushed to zero (what the `alexnet` command sets) against kept (PyTorch's
default), one CPU training step of the same network in the same run.

    python benchmarks/bench_denormals.py [--threads 1] [--steps 15] [--rounds 3] [--json]

Cases:
- saturated tanh: Fig. 1's tanh net (`cifar-4layer`, tanh, no norms) on inputs at the scale of
  cuda-convnet's 0-255 pixels minus the mean (std 63), with conv1's weights at std 2: there
  nearly every conv1 pre-activation is beyond +-44, where tanh's exp() underflows into
  subnormals, as in the Fig. 1 tanh net after its 65 epochs (97% of them, mean magnitude 930);
- tanh at initialisation: the same net as built (cuda-convnet's initialisation), no saturation;
- the 11% net (ReLU): the shipped model's net, fresh, on unit-variance inputs.

The flag is a setting of the thread that sets it and of the threads it starts afterwards, so
each measurement runs in a fresh process that sets it (or not) before any work; the two
settings take turns over `--rounds` rounds, and each row is the median.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys

CASES = {
    # case: (model, build options, input std, conv1 weight std or None to keep the init)
    "saturated tanh (Fig. 1 net, trained-like conv1)": (
        "cifar-4layer", {"activation": "tanh", "norm": False, "init": "cuda-convnet"}, 63.0, 2.0),
    "tanh at initialisation": (
        "cifar-4layer", {"activation": "tanh", "norm": False, "init": "cuda-convnet"}, 63.0, None),
    "11% net (ReLU)": ("cifar-conv-local", {}, 1.0, None),
}


def images_per_s(case: str, flush: bool, threads: int, steps: int, batch: int) -> float:
    """In a fresh process: the flag first, then `steps` timed training steps of `case`."""
    import time

    import torch

    torch.set_flush_denormal(flush)
    torch.set_num_threads(threads)
    from alexnet.bench.model import training_step
    from alexnet.models import build_model, model_spec

    name, options, input_std, conv1_std = CASES[case]
    torch.manual_seed(0)
    model = build_model(name, **options)
    if conv1_std is not None:
        conv1 = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        with torch.no_grad():
            conv1.weight.normal_(0.0, conv1_std)
    size = model_spec(name).input_size
    x = torch.randn(batch, 3, size, size) * input_std
    y = torch.randint(0, 10, (batch,))
    step = training_step(model, torch.device("cpu"), compile_model=False)
    for _ in range(3):
        step(x, y)
    begin = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    return steps * batch / (time.perf_counter() - begin)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from alexnet.bench import format_report
    from alexnet.engine.run_files import machine

    spawn = multiprocessing.get_context("spawn")
    rows, ratios = [], {}
    with spawn.Pool(1, maxtasksperchild=1) as pool:   # a fresh process per measurement
        for case in CASES:
            rates = {True: [], False: []}
            for _ in range(args.rounds):
                for flush in (True, False):
                    rates[flush].append(pool.apply(
                        images_per_s, (case, flush, args.threads, args.steps, args.batch)))
            flushed, kept = (statistics.median(rates[f]) for f in (True, False))
            rows += [{"variant": f"{case}: flushed (ours)", "images_per_s": flushed},
                     {"variant": f"{case}: kept (PyTorch's default)", "images_per_s": kept}]
            ratios[f"{case}: flushed / kept"] = flushed / kept
    report = {"benchmark": "subnormals flushed vs kept, one CPU training step",
              "settings": {"threads": args.threads, "steps": args.steps, "rounds": args.rounds,
                           "batch": args.batch},
              "environment": machine(), "rows": rows, "ratios": ratios}
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
