"""`alexnet train`: train a network with a named recipe and key=value overrides."""

from __future__ import annotations

import signal
from pathlib import Path

from alexnet.cli._args import add_threads_option, output_folder
from alexnet.console import info
from alexnet.errors import UserError
from alexnet.files import print_json
from alexnet.recipes import describe_recipe, recipe_names, recipe_summary

# Modules that load torch, numpy or PIL are imported inside the functions that use them:
# `alexnet --help` imports every command module (cli/__init__.py) and stays fast.

EPILOG = """\
recipes (--recipes describes each in full):
{recipes}

examples:
  alexnet train --data ../shared/data/cifar10/train
  alexnet train --recipe cifar10 epochs=30 --out runs/cifar10-30
  alexnet train --recipe imagenet-paper --data /data/ilsvrc2012 --out runs/paper
  torchrun --nproc_per_node=8 -m alexnet train --recipe imagenet-paper --data ... --out ...
  alexnet train --recipe imagenet-torchvision --data my_photos init_weights=tv.safetensors
      (fine-tunes weights from `alexnet import-torchvision`; a classifier for another
      number of classes starts from its own initialisation)
Re-running with the same --out continues an interrupted run exactly where it stopped."""


def register(subparsers) -> None:
    import argparse

    parser = subparsers.add_parser(
        "train", help="train a network (default: CIFAR-10, a short run)",
        description="Train a network with a named recipe. Settings are overridden with "
        "key=value (e.g. epochs=2 lr=0.01 batch_size=64 deterministic=true model.lrn=false).",
        epilog=EPILOG.format(recipes=recipe_lines()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="settings to change (unknown keys are listed with the valid ones)")
    parser.add_argument("--recipe", help="named recipe (default: cifar10)")
    parser.add_argument("--data", help="a prepared store or an image folder (prepared on the "
                        "fly into a cache); cifar10 without it downloads CIFAR-10")
    parser.add_argument("--out", type=output_folder("--out"),
                        help="run folder (default: runs/<recipe>-<time>); an "
                        "existing run there is resumed")
    parser.add_argument("--resume", action="store_true",
                        help="require --out to hold a run to continue")
    add_threads_option(parser)
    parser.add_argument("--recipes", action="store_true", help="list the recipes and exit")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=run)


def recipe_lines(width: int = 92) -> str:
    """Every recipe of the registry, one wrapped entry each (the default marked)."""
    import textwrap

    lines = []
    for name in recipe_names():
        label = f"{name} (default)" if name == "cifar10" else name
        lines += textwrap.wrap(f"{label}: {recipe_summary(name)}", width,
                               initial_indent="  ", subsequent_indent="      ")
    return "\n".join(lines)


def resolve(args):
    """(config, out folder): a new run's recipe and overrides, or the saved run's own."""
    from alexnet.engine.resume import run_config, run_folder

    overrides = list(args.overrides)
    if args.data is not None and not args.data.strip():
        raise UserError("--data is empty; give a prepared store or an image folder")
    if args.threads is not None:
        overrides.append(f"threads={args.threads}")
    if args.data:
        overrides.append(f"data={Path(args.data).expanduser().resolve()}")
    out = run_folder(args.out, args.recipe, args.resume)
    config = run_config(out, args.recipe, overrides)
    if args.out is None:     # a new run; the same command after a Ctrl-C comes here too
        from alexnet.engine.resume import unfinished_note

        note = unfinished_note(config.recipe)
        if note:
            info(note)
    return config, out


def next_commands(config, out: Path, summary: dict) -> list[str]:
    """What a user runs after training: evaluate, plot the curves, classify images."""
    import shlex

    from alexnet.engine.inputs import cifar_python_folder

    run_dir = shlex.quote(str(out))
    data = config.data or cifar_python_folder(config)
    if summary.get("held_out") and data:
        views = "" if config.eval_views == "center" else f" --views {config.eval_views}"
        evaluate = (f"alexnet eval {run_dir} --data {shlex.quote(str(data))} "
                    f"--split held-out{views}")
    else:
        evaluate = f"alexnet eval {run_dir} --data OTHER_IMAGES"
    return [evaluate, f"alexnet figures curves {run_dir}",
            f"alexnet predict {run_dir} IMAGE_OR_FOLDER..."]


def run(args) -> int:
    if args.recipes:
        for name in recipe_names():
            print(f"{name}: {describe_recipe(name)}")
        return 0
    from alexnet.engine.distributed import launched
    from alexnet.engine.train import train

    config, out = resolve(args)
    summary = train(config, out, resume=True if args.resume else None)
    main = launched().rank == 0
    if args.json and main:
        print_json(summary, indent=2)
    if main and summary.get("status") == "finished":
        info("next:\n" + "\n".join(f"  {line}" for line in next_commands(config, out, summary)))
    if summary.get("status") == "stopped":
        return 128 + int(getattr(signal, summary["signal"]))
    return 0
