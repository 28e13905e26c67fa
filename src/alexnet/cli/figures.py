"""`alexnet figures`: the paper's figures for a trained network (PNG, numbers with --json).

    filters CKPT                          conv1 kernels by tower, colour specificity (Fig. 3)
    curves RUN_DIR                        loss / error / lr against epoch from metrics.csv
    predictions CKPT IMAGE...             images with their top-5 bars (Fig. 4 left)
    neighbours CKPT --data STORE --query IMAGE...   nearest training images in fc7 space
                                          (Fig. 4 right)
"""

from __future__ import annotations

from pathlib import Path

from alexnet.cli._args import (
    add_amp_option,
    add_device_option,
    add_threads_option,
    add_views_option,
    count,
    output_file,
)
from alexnet.console import info, plural
from alexnet.errors import UserError
from alexnet.files import print_json

# Modules that load torch, numpy or PIL are imported inside the functions that use them:
# `alexnet --help` imports every command module (cli/__init__.py) and stays fast.


def register(subparsers) -> None:
    parser = subparsers.add_parser("figures", help="draw the paper's figures (filters, "
                                   "curves, predictions, neighbours)",
                                   description=__doc__.split("\n", 1)[1],
                                   formatter_class=_raw())
    kinds = parser.add_subparsers(title="figures", metavar="FIGURE", required=True)

    p = _figure(kinds, "filters", "conv1 kernels as a grid, by tower, with colour specificity")
    p.add_argument("checkpoint", metavar="CKPT", help="weights file, run folder or shipped name")
    p.set_defaults(run=run_filters)

    p = _figure(kinds, "curves", "training curves from RUN_DIR/metrics.csv")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder (or a metrics.csv file)")
    p.set_defaults(run=run_curves)

    p = _figure(kinds, "predictions", "images with their top-k predictions")
    p.add_argument("checkpoint", metavar="CKPT", help="weights file, run folder or shipped name")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    p.add_argument("--top", type=count("--top"), default=None,
                   help="predictions per image (default 5, or all if fewer)")
    add_views_option(p, "centre crop, or the paper's ten patches averaged")
    p.add_argument("--max-images", type=count("--max-images"), default=16,
                   help="draw at most this many images (default 16)")
    add_threads_option(p)
    p.set_defaults(run=run_predictions)

    p = _figure(kinds, "neighbours", "training images nearest to each query in fc7 space")
    p.add_argument("checkpoint", metavar="CKPT", help="weights file, run folder or shipped name")
    p.add_argument("--data", required=True, metavar="STORE",
                   help="the training images: a prepared store (or a folder to prepare)")
    p.add_argument("--query", required=True, nargs="+", metavar="IMAGE", help="query images")
    p.add_argument("-k", type=count("-k"), default=6, help="neighbours per query (default 6)")
    p.add_argument("--cache", metavar="DIR", help="feature cache folder (default: features/ in the user "
                   "cache, $ALEXNET_CACHE, else $XDG_CACHE_HOME/alexnet or ~/.cache/alexnet)")
    p.add_argument("--batch-size", type=count("--batch-size"), default=256,
                   help="feature extraction batch")
    add_device_option(p)
    add_amp_option(p)
    add_threads_option(p)
    p.set_defaults(run=run_neighbours)


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def _figure(kinds, name: str, help_text: str):
    p = kinds.add_parser(name, help=help_text, description=help_text + ".")
    p.add_argument("--out", metavar="PNG", type=output_file("--out"),
                   help="image to write (default: named after the figure in the current "
                   "folder, with -2, -3... when that name is taken; a run folder's curves and "
                   "filters go inside it)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON on stdout")
    return p


def free_name(name: str | Path) -> Path:
    """A default output in the current folder: `name`, or `name-2`, `name-3`... when it is
    taken (an earlier figure is never overwritten unless --out names it)."""
    path = Path(name)
    n = 1
    while path.exists():
        n += 1
        path = Path(name).with_name(f"{Path(name).stem}-{n}{Path(name).suffix}")
    return path


def _finish(args, png: Path, numbers: dict, line: str) -> int:
    numbers = {"png": str(png), **numbers}
    if args.json:
        print_json(numbers, indent=2)
    info(f"wrote {png}: {line}")
    return 0


def run_filters(args) -> int:
    from alexnet.analysis.filters import filter_report, kernel_tiles
    from alexnet.analysis.plots import plot_filters
    from alexnet.engine.checkpoint import load_model

    loaded = load_model(args.checkpoint)
    report = filter_report(loaded.model)
    towers = [{"name": t["name"], "tiles": kernel_tiles(t["kernels"]).numpy(),
               "colour_specificity": t["colour_specificity"]} for t in report["towers"]]
    # A run folder gets its figure inside it (beside curves.png); a file, in the current folder.
    default = (Path(args.checkpoint) / "filters.png" if Path(args.checkpoint).is_dir()
               else free_name(f"{loaded.path.stem}-filters.png"))
    png = plot_filters(towers, args.out or default,
                       f"{loaded.name} conv1 kernels ({loaded.path.name})")
    for t in report["towers"]:
        del t["kernels"]
    scores = ", ".join(f"{'tower ' + t['name'] if t['name'] != 'all' else 'all kernels'} "
                       f"{t['colour_specificity']:.3f}" for t in report["towers"])
    return _finish(args, png, {"checkpoint": str(loaded.path), **report},
                   f"colour specificity {scores} (0 grey, 1 pure colour, random 0.667)")


def run_curves(args) -> int:
    from alexnet.analysis.curves import metrics_path, read_metrics, summarise
    from alexnet.analysis.plots import plot_curves

    path = metrics_path(args.run_dir)
    epochs, series = read_metrics(path)
    summary = summarise(epochs, series)
    png = plot_curves(epochs, series, args.out or path.parent / "curves.png",
                      str(path.parent.name or path))
    best = summary["best"].get("val_top1_error")
    line = f"{summary['epochs']} epochs" + (
        f", best val top-1 error {100 * best['value']:.2f}% at epoch {best['epoch']:g}"
        if best else "")
    return _finish(args, png, {"metrics": str(path), **summary}, line)


def run_predictions(args) -> int:
    from alexnet.analysis.plots import plot_predictions
    from alexnet.analysis.predictions import expand_inputs, predict_files
    from alexnet.engine.checkpoint import load_model

    loaded = load_model(args.checkpoint)
    files = expand_inputs(args.images)[:args.max_images]
    results = predict_files(loaded, files, top=args.top, views=args.views, keep_images=True)
    for r in results:
        if "error" in r:
            info(f"{r['file']}: skipped: {r['error']}")
    good = [r for r in results if "top" in r]
    if not good:
        raise UserError("none of the images could be read")
    items = [{"image": r["image"], "title": "/".join(Path(r["file"]).parts[-2:]),
              "top": [(t["label"], t["prob"]) for t in r["top"]],
              "truth": Path(r["file"]).parent.name} for r in good]
    png = plot_predictions(items, args.out or free_name("predictions.png"))
    for r in results:
        r.pop("image", None)
    return _finish(args, png, {"checkpoint": str(loaded.path), "views": args.views,
                               "images": results}, plural(len(good), "image"))


def run_neighbours(args) -> int:
    from alexnet.analysis.neighbours import find_neighbours
    from alexnet.analysis.plots import plot_neighbours
    from alexnet.analysis.predictions import expand_inputs
    from alexnet.engine.checkpoint import load_model
    from alexnet.engine.distributed import pick_device

    loaded = load_model(args.checkpoint, device=pick_device(args.device))
    store, cache, found = find_neighbours(loaded, args.data, expand_inputs(args.query),
                                          args.k, args.cache, args.batch_size, args.amp)
    rows = [{"image": q["image"], "title": f"query\n{Path(q['file']).name}", "neighbours": [
        {"image": n["image"], "title": f"{n['label']}\n{n['distance']:.3g}"}
        for n in q["neighbours"]]} for q in found]
    png = plot_neighbours(rows, args.out or free_name("neighbours.png"))
    numbers = [{"file": q["file"], "neighbours": [
        {k: v for k, v in n.items() if k != "image"} for n in q["neighbours"]]} for q in found]
    how = "cached" if cache["cached"] else "extracted"
    return _finish(args, png, {"checkpoint": str(loaded.path), "store": str(store.path),
                               "features": cache, "queries": numbers},
                   f"{len(found)} queries over {cache['images']:,} images ({cache['dim']}-d "
                   f"features {how} in {cache['seconds']:.1f}s, search "
                   f"{cache['query_seconds']:.2f}s)")
