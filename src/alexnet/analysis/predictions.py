"""Top-k predictions for image files, through the same preprocessing as training.

Each file is decoded like the training data (`load_image` at the checkpoint's stored size:
shorter side resized, central crop), then cut into the evaluation views (centre crop, or the
paper's ten patches) and normalised with the checkpoint's own statistics. Files that cannot
be read become `{"file", "error"}` entries; the rest are still predicted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from alexnet.console import progress
from alexnet.data.folders import CANNOT_READ_FOLDER, IMAGE_SUFFIXES, walk_images
from alexnet.data.image_file import BadImage, load_image
from alexnet.engine.evaluate import check_views, view_probabilities
from alexnet.errors import UserError


def expand_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, and the image files inside directories (`folders.image_files`:
    recursively, sorted, hidden files left out).

    Files are kept whatever their suffix (they are reported if unreadable); inside folders
    only image suffixes count, so notes and metadata beside images are not "broken images".
    A folder inside that cannot be read is listed too, so that it is reported like a file
    that cannot be (`decode_files`).
    """
    files: list[Path] = []
    for spec in paths:
        path = Path(spec)
        if path.is_dir():
            walk = walk_images(path, path)
            found = sorted(walk.files)
            unreadable = [path / p["file"].rstrip("/") for p in walk.problems
                          if p["reason"].startswith(CANNOT_READ_FOLDER)]
            if not found and not unreadable:
                raise UserError(f"folder {str(path)!r} holds no image files "
                                f"({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(sorted([*found, *unreadable]))
        else:
            files.append(path)  # missing files are reported per file, like broken ones
    return files


def output_count(model) -> int:
    """The number of classes a model scores: its last linear layer's outputs."""
    last = [m for m in model.modules() if hasattr(m, "out_features")]
    return int(last[-1].out_features)


def check_top(loaded, top: int) -> None:
    """The checkpoint's class list fits its model's outputs and the request for `top`."""
    num_outputs = output_count(loaded.model)
    if num_outputs != len(loaded.classes):
        raise UserError(f"checkpoint {str(loaded.path)!r} names {len(loaded.classes)} classes "
                        f"but its model has {num_outputs} outputs")
    if top < 1:
        raise UserError(f"--top must be at least 1, got {top}")
    if top > len(loaded.classes):
        raise UserError(f"--top {top} asks for more classes than checkpoint "
                        f"{str(loaded.path)!r} has ({len(loaded.classes)})")


def decode_files(files: list[Path], size: int) -> Iterator[tuple[Path, np.ndarray | None, str]]:
    """(file, uint8 [size, size, 3] or None, error reason) for each file, in order."""
    for path in files:
        if not path.exists():
            yield path, None, "no such file"
            continue
        if path.is_dir():
            try:
                os.scandir(path).close()
            except OSError as err:
                yield path, None, f"{CANNOT_READ_FOLDER}: {err.strerror or err}"
                continue
            yield path, None, "is a folder"
            continue
        try:
            yield path, load_image(path, size), ""
        except BadImage as err:
            yield path, None, err.reason


def display_names(loaded) -> list[str]:
    """Human-readable class names: the checkpoint's `class_names` (training records them when
    the classes are ids such as ImageNet wnids), else the classes themselves."""
    names = loaded.meta.get("class_names")
    if isinstance(names, list) and len(names) == len(loaded.classes):
        return [str(n) for n in names]
    return list(loaded.classes)


def top_k(probs, classes: list[str], k: int, names: list[str] | None = None) -> list[dict]:
    """probs [classes] (tensor) -> [{"label", "prob", "class"}] for the k most probable, best
    first; "label" is the human-readable name, "class" the checkpoint's class id."""
    names = names or classes
    values, indices = probs.float().topk(k)
    return [{"label": names[int(i)], "prob": round(float(v), 6), "class": classes[int(i)]}
            for v, i in zip(values, indices, strict=True)]


def predict_files(loaded, files: list[Path], top: int | None = None, views: str = "center",
                  batch_size: int = 64, keep_images: bool = False,
                  amp_dtype=None) -> list[dict]:
    """Per file: {"file", "top": [{"label", "prob", "class"}]} or {"file", "error"}, in order.

    `top` None means 5, or all classes when there are fewer; more than the classes is an error.

    Images are decoded and classified `batch_size` at a time (memory stays bounded for large
    folders). With `keep_images`, successful entries also carry "image" (the decoded uint8
    [size, size, 3] array) for drawing.
    """
    check_views(views)
    if top is None:  # not asked for: the paper's 5, or every class of a smaller checkpoint
        top = min(5, len(loaded.classes))
    check_top(loaded, top)
    size = loaded.preprocessing.size
    names = display_names(loaded)
    results: list[dict] = []
    pending: list[tuple[dict, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        batch = np.stack([image for _, image in pending])
        probs = view_probabilities(loaded.model, batch, loaded.preprocessing, views=views,
                                   batch_size=batch_size, amp_dtype=amp_dtype).float().cpu()
        for (entry, image), row in zip(pending, probs, strict=True):
            if not bool(row.isfinite().all()):   # JSON has no NaN: an error entry instead
                entry["error"] = "the model's scores for it are not finite numbers"
                continue
            entry["top"] = top_k(row, loaded.classes, top, names)
            if keep_images:
                entry["image"] = image
        pending.clear()

    many = len(files) > 4 * batch_size  # progress only for long jobs
    with progress(len(files), "predict", unit="img", enabled=many) as bar:
        for path, image, reason in decode_files(files, size):
            entry: dict = {"file": str(path)}
            results.append(entry)
            if image is None:
                entry["error"] = reason
            else:
                pending.append((entry, image))
            if len(pending) == batch_size:
                flush()
            bar.advance(1)
        flush()
    return results
