"""`alexnet bench`: the project's fast paths against the standard ones, in the same run."""

from __future__ import annotations

from alexnet.choices import MAX_SIZE
from alexnet.cli._args import add_device_option, count
from alexnet.errors import UserError
from alexnet.files import print_json

# Modules that load torch, numpy or PIL are imported inside the functions that use them:
# `alexnet --help` imports every command module (cli/__init__.py) and stays fast.

TARGETS = {   # name: (short help, description)
    "model": ("one training step: ours vs plain PyTorch vs no LRN vs the conv ceiling",
              "One training step of a network on synthetic batches: the path training uses "
              "against plain PyTorch (fp32, nn.LocalResponseNorm, unfold locally connected "
              "layers) and against no LRN, with the step's GFLOP/s as a fraction of the "
              "hardware's convolution ceiling at the net's conv2 shape. --model-parallel: "
              "alexnet-paper's two towers on two devices against one."),
    "train": ("the training input pipeline vs ImageFolder + PIL + DataLoader",
              "The training input pipeline feeding a network: the store (raw, and JPEG decoded "
              "on the device) with on-device augmentation against ImageFolder + PIL + "
              "DataLoader, and the model step alone as the ceiling."),
    "eval": ("10-view evaluation: batched views on the device vs per-image TenCrop",
             "10-view evaluation in views/s: the views cut as one batch on the device against "
             "torchvision's per-image TenCrop, the same model after both, and against the "
             "model's forward alone (the ceiling)."),
    "prepare": ("decoding into a store over 1, 2, 4, ... workers vs a PIL loop",
                "Decoding images into a store over 1, 2, 4, ... worker processes and into a "
                "JPEG store, against a single-process PIL loop."),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure throughput against the standard alternative",
        description="Time the project's path and the standard alternative in the same run "
                    "and print both and their ratio, with the hardware and settings. "
                    "`alexnet bench TARGET --help` describes each target's options.")
    targets = parser.add_subparsers(title="targets", metavar="TARGET", dest="target",
                                    required=True)
    for name, (short, description) in TARGETS.items():
        target = targets.add_parser(name, help=short, description=description)
        if name != "prepare":
            target.add_argument("--model", default="alexnet-paper",
                                help="registry name (default %(default)s)")
        if name in ("train", "prepare"):
            target.add_argument("--data", help="a folder of images, used by both sides "
                                "(default: ../shared/data/imagenet-samples when present)")
            target.add_argument("--workers", type=count("--workers", 0, 1024), help="the most decoding processes "
                                "(default: all cores)" if name == "prepare" else
                                "loader worker processes (default: all cores)")
        if name in ("eval", "prepare"):
            target.add_argument("--images", type=count("--images"),
                                help="images to evaluate (default: 4000 on a GPU; on a CPU "
                                "2000 for 24-32 pixel nets, 32 for 224)" if name == "eval"
                                else "files of --data to use (default: all)")
        if name == "prepare":
            target.add_argument("--size", type=count("--size"), default=256,
                                help="stored image side (default %(default)s)")
        else:
            target.add_argument("--batch", type=count("--batch"),
                                help="batch size (default: 256 on a GPU; on a CPU 128 for "
                                "24-32 pixel nets, 16 for 224)" if name != "eval" else
                                "images per model call, ten views each (default: 400 on a "
                                "GPU; on a CPU 50 for 24-32 pixel nets, 16 for 224)")
            target.add_argument("--steps", type=count("--steps"), default=5 if name == "eval" else 20,
                                help=("timed passes over the images" if name == "eval" else
                                      "timed steps") + " after the warm-up (default %(default)s)")
            add_device_option(target)
        if name in ("model", "train"):
            target.add_argument("--compile", action="store_true", help="torch.compile the model")
        if name == "model":
            target.add_argument("--model-parallel", action="store_true",
                                help="alexnet-paper's two towers on two devices (two gloo "
                                "processes on a CPU) against one device, with the bytes "
                                "exchanged")
        target.add_argument("--json", action="store_true", help="print the report as JSON")
        target.set_defaults(run=run)


def default_images(data: str | None) -> str:
    from pathlib import Path

    path = Path(data) if data else Path("../shared/data/imagenet-samples")
    if not path.is_dir():
        raise UserError(f"no image folder at {str(path)!r}; pass --data FOLDER")
    return str(path)


def run(args) -> int:
    from alexnet.bench import format_report

    if hasattr(args, "model"):
        from alexnet.models import model_spec

        model_spec(args.model)  # an unknown name ends here, with the list of valid ones
    if getattr(args, "device", None):
        from alexnet.engine.distributed import pick_device

        pick_device(args.device)  # so does a device that is not here
    if args.target == "model" and args.model_parallel:
        from alexnet.bench.model_parallel import bench_model_parallel

        if args.compile:
            raise UserError("--model-parallel measures the towers without --compile")
        report = bench_model_parallel(args.model, batch=args.batch, steps=args.steps,
                                      device=args.device)
    elif args.target == "model":
        from alexnet.bench.model import bench_model

        report = bench_model(args.model, batch=args.batch, steps=args.steps,
                             compile_model=args.compile, device=args.device)
    elif args.target == "train":
        from alexnet.bench.train import bench_train

        report = bench_train(default_images(args.data), args.model, batch=args.batch,
                             steps=args.steps, workers=args.workers,
                             compile_model=args.compile, device=args.device)
    elif args.target == "prepare":
        from alexnet.bench.prepare import bench_prepare

        if args.size > MAX_SIZE:
            raise UserError(f"--size must be from 1 to {MAX_SIZE:,}, got {args.size}")
        report = bench_prepare(default_images(args.data), args.size, args.workers, args.images)
    else:
        from alexnet.bench.evaluate import bench_eval

        report = bench_eval(args.model, images=args.images, batch=args.batch,
                            steps=args.steps, device=args.device)
    if args.json:
        print_json(report, indent=2)
    else:
        print(format_report(report))
    return 0
