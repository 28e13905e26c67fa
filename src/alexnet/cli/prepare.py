"""`alexnet prepare SRC OUT`: decode images once into the uint8 store training reads."""

from __future__ import annotations

from alexnet.cli._args import count
from alexnet.console import info
from alexnet.files import print_json

# Modules that load torch, numpy or PIL are imported inside the functions that use them:
# `alexnet --help` imports every command module (cli/__init__.py) and stays fast.


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "prepare", help="decode an image source once into a uint8 store",
        description="Decode SRC (an ImageFolder tree, an ILSVRC-2012 train or validation "
        "folder, a CIFAR-10 python folder) in parallel: shorter side to SIZE, central "
        "SIZE x SIZE crop, written to the store OUT with labels, classes, the mean image and "
        "the RGB covariance's eigen-decomposition. Re-running on a finished store does "
        "nothing; on an interrupted one it continues.")
    parser.add_argument("src", help="image source folder (or a CIFAR-10 batch file)")
    parser.add_argument("out", help="store folder to create")
    parser.add_argument("--size", type=count("--size"), default=256,
                        help="stored image side (default 256, the paper's; CIFAR-10: 32)")
    parser.add_argument("--workers", type=count("--workers", 1, 1024), default=None,
                        help="decoding processes (default: all CPU cores)")
    parser.add_argument("--split", choices=["train", "test"], default=None,
                        help="CIFAR-10 python folder: which batches (default train)")
    parser.add_argument("--labels", default=None, help="validation labels: the devkit's "
                        "ILSVRC2012_validation_ground_truth.txt or Kaggle's LOC_val_solution.csv "
                        "(default: looked for beside SRC and in its parents)")
    parser.add_argument("--devkit", default=None,
                        help="folder holding the devkit's meta.mat (default: beside --labels)")
    parser.add_argument("--classes", default=None,
                        help="label by this class list: a prepared store (e.g. the training "
                        "one, for a validation folder missing some classes) or a text file "
                        "of class ids, one per line (`<wnid> <name>` lines give names too)")
    parser.add_argument("--format", choices=["raw", "jpeg"], default="raw", dest="encoding",
                        help="raw: uint8 arrays, the fastest to read (ILSVRC-2012 at 256: about "
                        "250 GB); jpeg: one JPEG per image, about a tenth of the disk, decoded "
                        "in batches on the GPU by nvJPEG (default raw)")
    parser.add_argument("--quality", type=count("--quality", 1, 100), default=90,
                        help="JPEG quality of a --format jpeg store (default 90)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 when any file was skipped")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.set_defaults(run=run)


def run(args) -> int:
    from alexnet.data.prepare import SkippedFiles, SourceOptions, prepare_store

    source = SourceOptions(split=args.split, labels=args.labels, devkit=args.devkit,
                           classes=args.classes)
    try:
        summary = prepare_store(args.src, args.out, size=args.size, workers=args.workers,
                                strict=args.strict, progress=True, source=source,
                                encoding=args.encoding, quality=args.quality)
    except SkippedFiles as err:      # --strict: the store is written; say what was skipped
        report(err.summary, args.json)
        raise
    report(summary, args.json)
    return 0


def report(summary: dict, as_json: bool) -> None:
    """The summary as JSON on stdout, or what was skipped in lines on stderr."""
    from alexnet.data.prepare import report_skipped

    if as_json:
        print_json(summary, indent=2)
        return
    if summary["status"] == "already prepared":
        info(f"{summary['store']} is already prepared: {summary['images']:,} images, "
             f"{summary['num_classes']} classes; nothing to do")
    report_skipped(summary)
