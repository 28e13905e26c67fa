"""`alexnet ensemble`: several checkpoints and their averaged softmax (the paper's "5 CNNs")."""

from __future__ import annotations

from alexnet.cli._args import add_evaluation_data, add_evaluation_run
from alexnet.console import info, plural
from alexnet.errors import UserError
from alexnet.files import print_json

# Modules that load torch, numpy or PIL are imported inside the functions that use them:
# `alexnet --help` imports every command module (cli/__init__.py) and stays fast.


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ensemble", help="errors of several checkpoints and of their average",
        description="Evaluate each checkpoint and the ensemble that averages their softmax "
        "outputs, as the paper's \"5 CNNs\" rows.")
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT",
                        help="the members: .safetensors files, run folders or shipped model "
                        "names, all with the same classes")
    add_evaluation_data(parser, "checkpoints'",
                        "averaged per member before the members are averaged")
    parser.add_argument("--split", default="all", choices=["all", "held-out"],
                        help="all: every image (default); held-out: only the images every "
                        "member's run held out of this store (none of them trained on), "
                        "refused for any other store")
    add_evaluation_run(parser)
    parser.add_argument("--json", action="store_true",
                        help='print {"members": [...], "ensemble": {...}} errors (fractions)')
    parser.set_defaults(run=run)


def run(args) -> int:
    from alexnet.data.cache import ensure_store
    from alexnet.engine.checkpoint import load_model
    from alexnet.engine.distributed import pick_device
    from alexnet.engine.ensemble import ensemble_evaluate
    from alexnet.engine.evaluate import error_text, views_name
    from alexnet.engine.fast_path import prepare_for_inference
    from alexnet.engine.inputs import check_classes, trained_on_note

    device = pick_device(args.device)
    members = [load_model(spec, device) for spec in args.checkpoints]
    amp_dtype = [prepare_for_inference(m.model, args.amp) for m in members][0]
    sizes = {m.preprocessing.size for m in members}
    if len(sizes) > 1:
        raise UserError(f"the checkpoints expect different stored image sizes {sorted(sizes)}")
    def check(store) -> None:     # a folder before it is prepared, a store once it is
        for m in members:
            check_classes(store, m.classes, f"the checkpoint {str(m.path)!r}")

    store = ensure_store(args.data, sizes.pop(), check=check)
    check(store)
    indices = held_out_by_all(store, members, args.checkpoints) \
        if args.split == "held-out" else None
    for m, spec in zip(members, args.checkpoints, strict=True):
        note = trained_on_note(store, m.meta, m.preprocessing, spec) if indices is None \
            else None
        if note:
            info(note)
    result = ensemble_evaluate([m.model for m in members], [m.preprocessing for m in members],
                               store.images, store.labels, args.views, indices=indices,
                               batch_size=args.batch_size, amp_dtype=amp_dtype,
                               show_progress=True)
    for m, r in zip(members, result["members"], strict=True):
        r["checkpoint"] = str(m.path)
    if args.json:
        print_json(result, indent=2)
        return 0
    classes = len(members[0].classes)
    for r in result["members"]:
        info(f"{r['checkpoint']}: {error_text(r, classes)}")
    e = result["ensemble"]
    held = ", held out" if indices is not None else ""
    info(f"ensemble of {len(members)} (softmax averaged, {views_name(args.views)}{held}): "
         f"{error_text(e, classes)} on {plural(e['images'], 'image')}")
    return 0


def held_out_by_all(store, members, specs):
    """The images of `store` that every member's run held out (`eval --split held-out`'s
    split, per member), sorted; UserError when no image was held out by all."""
    import numpy as np

    from alexnet.engine.inputs import held_out_indices

    common = None
    for m, spec in zip(members, specs, strict=True):
        try:
            mine = held_out_indices(store, m.meta, m.preprocessing)
        except UserError as err:
            raise UserError(f"{spec}: {err}", err.exit_code) from None
        common = mine if common is None else np.intersect1d(common, mine)
    if not len(common):
        raise UserError(f"--split held-out: no image of {str(store.path)!r} was held out by "
                        f"every member (their runs drew different splits: another seed); use "
                        f"--split all")
    return common
