"""`alexnet export`: a checkpoint as ONNX, TorchScript, a torch.export program or torchvision weights."""

from __future__ import annotations

from alexnet.cli._args import output_file
from alexnet.console import info
from alexnet.files import print_json

# Modules that load torch, numpy or PIL are imported inside the functions that use them:
# `alexnet --help` imports every command module (cli/__init__.py) and stays fast.

FORMAT_HELP = ("onnx (run with onnxruntime), torchscript (torch.jit, C++/mobile), "
               "exported-program (torch.export .pt2), torchvision (a state-dict .pth that "
               "torchvision.models.alexnet() loads; alexnet-torchvision checkpoints only)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a checkpoint (ONNX, TorchScript, torch.export, torchvision)",
        description="Export a checkpoint to run outside this project. Graph formats have a "
        "dynamic batch dimension, carry the classes and preprocessing as metadata, and are "
        "checked against PyTorch (max abs difference <= 1e-4) after writing.")
    parser.add_argument("checkpoint", metavar="CKPT",
                        help="weights file, run folder or shipped model name")
    parser.add_argument("--format", required=True, metavar="FORMAT",
                        choices=["onnx", "torchscript", "exported-program", "torchvision"],
                        help=FORMAT_HELP)
    parser.add_argument("--out", metavar="FILE", type=output_file("--out"),
                        help="output file (default: CKPT with .onnx/.pt/.pt2/.pth)")
    parser.add_argument("--embed-preprocessing", action="store_true",
                        help="put the mean/std normalisation inside the graph: input becomes "
                        "RGB 0-255 floats [N, 3, crop, crop]")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="skip running the exported file against PyTorch")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from alexnet.engine.checkpoint import PRETRAINED_DIR, load_model, resolve_checkpoint
    from alexnet.interop.export import default_output, export_checkpoint

    loaded = load_model(args.checkpoint)
    out = args.out
    if out is None:  # beside the checkpoint; a shipped model's export goes to the current folder
        path = resolve_checkpoint(args.checkpoint)
        shipped = path.parent == PRETRAINED_DIR
        out = default_output(Path(path.name) if shipped else path, args.format)
    summary = export_checkpoint(loaded, args.format, out,
                                embed_preprocessing=args.embed_preprocessing, check=args.check)
    if args.json:
        print_json(summary, indent=2)
        return 0
    diff = summary.get("max_abs_diff")
    checked = (f", max |exported - PyTorch| = {diff:.1e} on a batch of 3" if diff is not None
               else ", not checked" + (" (onnxruntime not installed)"
                                       if args.check and args.format == "onnx" else ""))
    if args.format == "torchvision":
        checked = ""
    info(f"wrote {summary['out']} ({args.format}, {summary['model']}){checked}")
    return 0
