"""`alexnet import-torchvision`: a torchvision AlexNet state-dict file as a project checkpoint."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-torchvision", help="turn torchvision AlexNet weights (.pth) into a checkpoint",
        description="Read a torchvision AlexNet state dict (e.g. the published "
        "alexnet-owt-7be5be79.pth, or torch.save(model.state_dict())) with "
        "torch.load(weights_only=True) and write an alexnet-torchvision checkpoint carrying "
        "the ImageNet class names and torchvision's preprocessing (shorter side 256, centre "
        "224 crop, per-channel mean/std). The reverse: alexnet export CKPT --format torchvision.")
    parser.add_argument("weights", metavar="WEIGHTS.pth", help="torchvision state-dict file")
    parser.add_argument("--out", required=True, metavar="CKPT",
                        help="checkpoint to write (.safetensors)")
    parser.add_argument("--classes", metavar="FILE",
                        help="class names, one per line (needed when there are not 1000 "
                        "classes; default: the ImageNet categories)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=run)


def run(args) -> int:
    from alexnet.console import info
    from alexnet.interop.torchvision import import_torchvision, read_class_names

    classes = read_class_names(args.classes) if args.classes else None
    summary = import_torchvision(args.weights, args.out, classes=classes)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        info(f"wrote {summary['out']}: {summary['model']} with {summary['classes']} classes and "
             f"torchvision's preprocessing (from {summary['weights']})")
    return 0
