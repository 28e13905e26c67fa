"""`alexnet eval`: top-1 and top-5 error of a checkpoint on a store or image folder."""

from __future__ import annotations

from alexnet.cli._args import add_evaluation_data, add_evaluation_run
from alexnet.console import info, plural
from alexnet.files import print_json

# Modules that load torch, numpy or PIL are imported inside the functions that use them:
# `alexnet --help` imports every command module (cli/__init__.py) and stays fast.


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="top-1/top-5 error of a checkpoint",
        description="Evaluate a checkpoint (a weights file, a run folder meaning its best "
        "checkpoint, or a shipped model name) on images: top-1 and top-5 error.")
    parser.add_argument("checkpoint", metavar="CKPT",
                        help="a .safetensors weights file, a run folder or a shipped model name")
    add_evaluation_data(parser, "checkpoint's", "averaged")
    parser.add_argument("--split", default="all", choices=["all", "held-out"],
                        help="all: every image (default); held-out: only the images the "
                        "checkpoint's run held out of this store, refused for any other store")
    add_evaluation_run(parser)
    parser.add_argument("--json", action="store_true",
                        help='print {"top1_error", "top5_error", "images"} (fractions)')
    parser.set_defaults(run=run)


def run(args) -> int:
    from alexnet.data.cache import ensure_store
    from alexnet.engine.checkpoint import load_model
    from alexnet.engine.distributed import pick_device
    from alexnet.engine.evaluate import error_text, evaluate, views_name
    from alexnet.engine.fast_path import prepare_for_inference
    from alexnet.engine.inputs import check_classes, held_out_indices, trained_on_note

    loaded = load_model(args.checkpoint, pick_device(args.device))
    amp_dtype = prepare_for_inference(loaded.model, args.amp)
    what = f"the checkpoint {str(loaded.path)!r}"
    # A folder of other classes is refused before it is prepared, not after.
    store = ensure_store(args.data, loaded.preprocessing.size,
                         check=lambda source: check_classes(source, loaded.classes, what))
    check_classes(store, loaded.classes, what)
    indices = held_out_indices(store, loaded.meta, loaded.preprocessing) \
        if args.split == "held-out" else None
    note = trained_on_note(store, loaded.meta, loaded.preprocessing, str(args.checkpoint)) \
        if indices is None else None
    if note:
        info(note)
    result = evaluate(loaded.model, store, preprocessing=loaded.preprocessing,
                      views=args.views, indices=indices, batch_size=args.batch_size,
                      amp_dtype=amp_dtype, show_progress=True)
    if args.json:
        print_json({k: result[k] for k in ("top1_error", "top5_error", "images")})
    else:
        info(f"{loaded.path}: {error_text(result, len(loaded.classes), 'error')} on "
             f"{plural(result['images'], 'image')} "
             f"({views_name(args.views)}{', held out' if indices is not None else ''})")
    return 0
