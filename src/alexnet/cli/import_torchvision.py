"""`alexnet import-torchvision`: torchvision AlexNet weights as a project checkpoint."""

from __future__ import annotations

from alexnet.cli._args import output_file
from alexnet.console import info
from alexnet.errors import UserError
from alexnet.files import print_json

# Modules that load torch, numpy or PIL are imported inside the functions that use them:
# `alexnet --help` imports every command module (cli/__init__.py) and stays fast.


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-torchvision", help="turn torchvision AlexNet weights (.pth) into a checkpoint",
        description="Read a torchvision AlexNet state dict (e.g. the published "
        "alexnet-owt-7be5be79.pth, or torch.save(model.state_dict())) with "
        "torch.load(weights_only=True), or with --download fetch torchvision's published "
        "ImageNet weights through torchvision's weights API into torch hub's cache, and write "
        "an alexnet-torchvision checkpoint carrying the ImageNet class names and "
        "torchvision's preprocessing (shorter side 256, centre 224 crop, per-channel "
        "mean/std). The reverse: alexnet export CKPT --format torchvision.")
    parser.add_argument("weights", metavar="WEIGHTS.pth", nargs="?",
                        help="torchvision state-dict file (or --download)")
    parser.add_argument("--download", action="store_true",
                        help="fetch torchvision's ImageNet weights (IMAGENET1K_V1, 233 MB) "
                        "into torch hub's cache, once, and import those")
    parser.add_argument("--out", required=True, metavar="CKPT", type=output_file("--out"),
                        help="checkpoint to write (.safetensors)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--classes", metavar="FILE",
                        help="class names, one per line, or '<wnid> <words>' lines like "
                        "LOC_synset_mapping.txt (needed when there are not 1000 classes; "
                        "default: the ImageNet category names)")
    source.add_argument("--classes-from", metavar="STORE",
                        help="take the classes (and names) from a prepared store, e.g. your "
                        "ImageNet validation store, so `alexnet eval` can use it")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=run)


def run(args) -> int:
    from alexnet.data.sources import read_class_list
    from alexnet.interop.torchvision import download_torchvision_weights, import_torchvision

    if args.download == bool(args.weights):
        raise UserError("give either a weights file or --download (torchvision's published "
                        "ImageNet weights), not " + ("both" if args.download else "neither"))
    classes = names = None
    if args.classes:
        classes, names = read_class_list(args.classes, "--classes")
    elif args.classes_from:
        classes, names = read_class_list(args.classes_from, "--classes-from")
    weights = download_torchvision_weights() if args.download else args.weights
    summary = import_torchvision(weights, args.out, classes=classes, class_names=names)
    if args.json:
        print_json(summary, indent=2)
    else:
        info(f"wrote {summary['out']}: {summary['model']} with {summary['classes']} classes and "
             f"torchvision's preprocessing (from {summary['weights']})")
    return 0
