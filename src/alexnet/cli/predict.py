"""`alexnet predict [MODEL] IMAGE_OR_DIR...`: top-k classes for your own images."""

from __future__ import annotations

import sys
from pathlib import Path

from alexnet.cli._args import (
    add_amp_option,
    add_device_option,
    add_threads_option,
    add_views_option,
    count,
)
from alexnet.console import info
from alexnet.engine import run_layout as layout
from alexnet.errors import UserError
from alexnet.files import print_json

# Modules that load torch, numpy or PIL are imported inside the functions that use them:
# `alexnet --help` imports every command module (cli/__init__.py) and stays fast.

DEFAULT_MODEL = "cifar10-conv-local"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="classify image files with a trained network",
        usage="alexnet predict [options] [MODEL] IMAGE_OR_DIR [IMAGE_OR_DIR ...]",
        description="Classify images (files or folders, searched recursively) with a "
        "checkpoint, run folder or shipped model. Images get the training preprocessing "
        "(shorter side resized, central crop, the checkpoint's mean/std) and the centre view "
        "or the paper's ten views. MODEL may be left out: the first argument is a model when "
        f"it is a shipped name, a .safetensors file or a run folder; else {DEFAULT_MODEL!r} "
        "(shipped) is used. Unreadable files are reported and skipped.")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR",
                        help="image files or folders, optionally preceded by MODEL")
    parser.add_argument("--model", help="the model, given explicitly")
    parser.add_argument("--top", type=count("--top"), default=None,
                        help="classes per image (default 5, or all if fewer)")
    add_views_option(parser, "centre crop (default) or the paper's ten patches, averaged")
    parser.add_argument("--batch-size", type=count("--batch-size"), default=64,
                        help="images per forward pass")
    add_device_option(parser)
    add_amp_option(parser)
    add_threads_option(parser)
    parser.add_argument("--json", action="store_true",
                        help='print [{"file", "top": [{"label", "prob", "class"}]} | '
                        '{"file", "error"}]: label is the readable name, class the id')
    parser.set_defaults(run=run)


def looks_like_model(spec: str) -> bool:
    """A shipped name, a .safetensors file or a folder holding a run's weights."""
    from alexnet.engine.checkpoint import shipped_models

    path = Path(spec)
    if spec in shipped_models() or path.suffix == ".safetensors":
        return True
    try:
        return path.is_dir() and any((path / name).is_file() for name in layout.WEIGHTS)
    except OSError:         # a folder that cannot be searched: an (unreadable) image folder
        return False


def split_model(inputs: list[str], model: str | None) -> tuple[str, list[str]]:
    """(model spec, image arguments) from the positionals and --model."""
    from alexnet.data.folders import IMAGE_SUFFIXES
    from alexnet.engine.checkpoint import shipped_models

    if model is None and inputs:
        first = inputs[0]
        if Path(first).suffix in (".pth", ".pt") and Path(first).is_file():
            raise UserError(f"{first!r} is a PyTorch file, not a checkpoint of this project; "
                            f"for torchvision AlexNet weights run `alexnet import-torchvision "
                            f"{first} --out MODEL.safetensors` first")
        # A missing path without an image suffix reads as a (mistyped) model name, so the
        # user hears which models exist rather than "no such file".
        missing_name = not Path(first).exists() and Path(first).suffix.lower() not in \
            IMAGE_SUFFIXES
        if missing_name and len(inputs) == 1:
            names = ", ".join(shipped_models()) or "none yet"
            raise UserError(f"{first!r} is not an image, a folder, a checkpoint or a shipped "
                            f"model (shipped models: {names})")
        if looks_like_model(first) or missing_name:
            model, inputs = first, inputs[1:]
    if model is None:
        if DEFAULT_MODEL not in shipped_models():
            names = ", ".join(shipped_models())
            raise UserError(f"no model given and the default shipped model {DEFAULT_MODEL!r} "
                            f"is not installed; name a checkpoint, run folder or shipped model "
                            f"({names or 'none are shipped yet'})")
        model = DEFAULT_MODEL
    if not inputs:
        raise UserError(f"no images given to classify with {model!r}")
    return model, inputs


def model_line(spec: str, loaded, named: bool) -> str:
    """Which model classifies, on stderr before the results: a photo of a fish "96.63%
    airplane" must not leave a doubt that a CIFAR-10 model looked at it."""
    from alexnet.analysis.predictions import display_names

    names = display_names(loaded)
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    what = f"{loaded.name}, {len(names)} classes: {shown}"
    if named:
        return f"model: {spec} ({what})"
    return (f"no model named: classifying with the shipped CIFAR-10 model {spec!r} ({what}); "
            f"to use another, name it first: alexnet predict MODEL IMAGE...")


def format_result(entry: dict) -> str:
    if "error" in entry:
        return f"{entry['file']}: cannot read: {entry['error']}"
    lines = [entry["file"]]
    lines += [f"  {t['prob'] * 100:6.2f}%  {t['label']}" for t in entry["top"]]
    return "\n".join(lines)


def run(args) -> int:
    from alexnet.analysis.predictions import expand_inputs, predict_files
    from alexnet.engine.checkpoint import load_model
    from alexnet.engine.distributed import pick_device
    from alexnet.engine.fast_path import prepare_for_inference

    model, images = split_model(args.inputs, args.model)
    files = expand_inputs(images)
    device = pick_device(args.device)
    loaded = load_model(model, device=device)
    info(model_line(model, loaded, named=args.model is not None or model != DEFAULT_MODEL
                    or args.inputs[0] == DEFAULT_MODEL))
    amp_dtype = prepare_for_inference(loaded.model, args.amp)
    results = predict_files(loaded, files, top=args.top, views=args.views,
                            batch_size=args.batch_size, amp_dtype=amp_dtype)
    failed = [r for r in results if "error" in r]
    for entry in failed:
        print(f"alexnet: {entry['file']}: skipped: {entry['error']}", file=sys.stderr)
    if args.json:
        print_json(results, indent=2)
    else:
        for entry in results:
            if "top" in entry:
                print(format_result(entry))
    if failed:
        info(f"{len(results) - len(failed)} of {len(results)} images classified; "
             f"{len(failed)} could not be read")
    return 1 if failed and len(failed) == len(results) else 0
