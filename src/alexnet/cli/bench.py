"""`alexnet bench`: the project's fast paths against the standard ones, in the same run."""

from __future__ import annotations

import json

from alexnet.cli._args import count

TARGETS = ("model", "train", "eval", "prepare")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure throughput against the standard alternative",
        description="Time the project's path and the standard alternative in the same run "
                    "and print both and their ratio, with the hardware and settings.")
    parser.add_argument("target", nargs="?", default="model", choices=TARGETS,
                        help="what to measure (default: model)")
    parser.add_argument("--model", default="alexnet-paper", help="registry name")
    parser.add_argument("--data", help="train, prepare: a folder of images for both "
                        "pipelines (default: ../shared/data/imagenet-samples when present)")
    parser.add_argument("--workers", type=count("--workers", 0, 1024),
                        help="train: loader worker processes; prepare: the most decoding "
                        "processes (default: all cores)")
    parser.add_argument("--images", type=count("--images"),
                        help="eval: images (default: 4000 GPU, 32 CPU); "
                        "prepare: files of --data to use (default: all)")
    parser.add_argument("--size", type=count("--size"), default=256,
                        help="prepare: stored image side (default 256)")
    parser.add_argument("--batch", type=count("--batch"),
                        help="batch size (default: 256 on GPU, 16 on CPU)")
    parser.add_argument("--steps", type=count("--steps"), default=20,
                        help="timed steps after warm-up")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--model-parallel", action="store_true",
                        help="model: alexnet-paper's two towers on two devices (two gloo "
                        "processes on the CPU) against one device, with the bytes exchanged")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def default_images(data: str | None) -> str:
    from pathlib import Path

    from alexnet.errors import UserError

    path = Path(data) if data else Path("../shared/data/imagenet-samples")
    if not path.is_dir():
        raise UserError(f"no image folder at {str(path)!r}; pass --data FOLDER")
    return str(path)


def run(args) -> int:
    from alexnet.bench import format_report
    from alexnet.bench.model import bench_model
    from alexnet.models import model_spec

    model_spec(args.model)  # an unknown name ends here, with the list of valid ones
    if args.device:
        from alexnet.engine.distributed import pick_device

        pick_device(args.device)  # so does a device that is not here
    if args.model_parallel:
        from alexnet.bench.model_parallel import bench_model_parallel
        from alexnet.errors import UserError

        if args.target != "model" or args.compile:
            raise UserError("--model-parallel measures `bench model` only, without --compile")
        report = bench_model_parallel(args.model, batch=args.batch, steps=args.steps,
                                      device=args.device)
    elif args.target == "model":
        report = bench_model(args.model, batch=args.batch, steps=args.steps,
                             compile_model=args.compile, device=args.device)
    elif args.target == "train":
        from alexnet.bench.train import bench_train

        report = bench_train(default_images(args.data), args.model, batch=args.batch,
                             steps=args.steps, workers=args.workers,
                             compile_model=args.compile, device=args.device)
    elif args.target == "prepare":
        from alexnet.bench.prepare import bench_prepare
        from alexnet.data.store import MAX_SIZE
        from alexnet.errors import UserError

        if args.size > MAX_SIZE:
            raise UserError(f"--size must be from 1 to {MAX_SIZE:,}, got {args.size}")

        report = bench_prepare(default_images(args.data), args.size, args.workers, args.images)
    else:
        from alexnet.bench.evaluate import bench_eval

        report = bench_eval(args.model, images=args.images, batch=args.batch,
                            device=args.device)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
