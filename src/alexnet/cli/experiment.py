"""`alexnet experiment`: reproduce the paper's CIFAR-10 claims with the training engine."""

from __future__ import annotations

from pathlib import Path

from alexnet.cli._args import add_threads_option, count, output_folder
from alexnet.experiments.runner import (
    DEFAULT_LRS,
    DEFAULT_SEEDS,
    EXPERIMENTS,
    OTHER_SEEDS,
    QUICK_PER_CLASS,
    Experiment,
    run_experiment,
)
from alexnet.files import print_json


def register(subparsers) -> None:
    import argparse

    parser = subparsers.add_parser(
        "experiment", help="reproduce the paper's CIFAR-10 claims",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="relu-vs-tanh: paper Fig. 1 (epochs to 25% training error, ReLU vs "
        "tanh, each at its best swept lr, no regularisation).\n"
        "lrn: paper §3.3, two comparisons: the paper's (cuda-convnet's 13% file vs its 11% "
        "file) and the clean ablation (the 11% net with and without its two norms).\n"
        "pooling: paper §3.4 (overlapping 3/2 vs non-overlapping 2/2 max-pooling).\n"
        "precision: the 11% net with bf16 autocast and channels_last vs fp32 NCHW.\n"
        "init: paper §5, alexnet-paper from the paper's initialisation vs PyTorch's "
        "(with --recipe imagenet-paper --per-class N: CIFAR-10 upscaled to 256).\n"
        "towers: paper §6.1, Fig. 3: whether one tower's conv1 turns colour-agnostic and the "
        "other's colour-specific, in every run (cifar-towers split, cross_tower and one-tower "
        "arms; the gap per seed against a null from random halves of one tower).\n"
        "Extra key=value settings go to every training run (e.g. epochs=150).")
    parser.add_argument("name", choices=EXPERIMENTS, help="the claim to reproduce (above)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="settings for every run, as for `alexnet train`")
    parser.add_argument("--data", required=True,
                        help="CIFAR-10 training images (image folder or prepared store)")
    parser.add_argument("--out", type=output_folder("--out"),
                        help="results folder (default: runs/experiment-<name>)")
    parser.add_argument("--seeds", type=count("--seeds", 1, 1000),
                        help="seeds per arm (lrn, pooling, precision, init, towers; default "
                        f"{OTHER_SEEDS}; {DEFAULT_SEEDS['towers']} for towers)")
    parser.add_argument("--recipe", default="cifar10",
                        help="lrn, pooling, precision, init, towers: the recipe every arm "
                        "trains with "
                        "(default %(default)s; e.g. cuda-convnet's cifar10-11pct, or "
                        "imagenet-paper for init); the held-out images stay out for every "
                        "epoch, even where the recipe would train on them late (fold_in_epoch)")
    parser.add_argument("--lrs", default=DEFAULT_LRS,
                        help="learning rates swept for each activation (relu-vs-tanh; "
                        "default %(default)s)")
    parser.add_argument("--sweep-epochs", type=count("--sweep-epochs"), default=2,
                        help="epochs each swept lr trains for (relu-vs-tanh; default "
                        "%(default)s)")
    parser.add_argument("--max-epochs", type=count("--max-epochs"), default=60,
                        help="give up on reaching 25%% training error after this many "
                        "(relu-vs-tanh; default %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run: {QUICK_PER_CLASS} images per class, one epoch, "
                        "one seed, two lrs (towers: two seeds, two epochs; minutes on a CPU; "
                        "its numbers mean nothing)")
    parser.add_argument("--per-class", type=count("--per-class"),
                        help="train on the first N images of each class (a subset store, made "
                        "once in the results folder; default: all)")
    parser.add_argument("--arm", action="append", default=[], metavar="ARM",
                        help="lrn, pooling, precision, init: train only this arm (its name or "
                        "run-folder name, e.g. 11pct-net-without-its-norms; repeatable), to "
                        "train arms side by side in separate processes or machines with the "
                        "same --out; the comparisons come from a run without --arm once every "
                        "arm has finished")
    add_threads_option(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(run=run)


def run(args) -> int:
    overrides = list(args.overrides)
    if args.threads is not None:
        overrides.append(f"threads={args.threads}")
    results = run_experiment(Experiment(
        args.name, args.data, Path(args.out or f"runs/experiment-{args.name}"),
        seeds=args.seeds, recipe=args.recipe, lrs=args.lrs, sweep_epochs=args.sweep_epochs,
        max_epochs=args.max_epochs, per_class=args.per_class, quick=args.quick,
        overrides=tuple(overrides), arms=tuple(args.arm)))
    if args.json:
        print_json(results, indent=2, default=str)
    return 0
