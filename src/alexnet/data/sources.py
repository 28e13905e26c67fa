"""Where images come from: every layout is read into (files, labels, classes, class names).

- ImageFolder trees: `root/<class>/**/<image>`; classes are the sorted sub-folder names that
  hold at least one image (or cannot be read: reported, and kept so later labels do not
  shift); hidden files and folders, non-image files and prepared stores kept inside are
  ignored (`folders.walk_images`).
- ILSVRC-2012 validation as a flat folder, labelled by the devkit or by Kaggle's CSV
  (`ilsvrc.py`), mapped to the same sorted-wnid class indices as training; already sorted
  into wnid folders it is an ImageFolder tree.
- CIFAR-10 in its python format (`cifar-10-batches-py`, `cifar.py`): train =
  data_batch_1..5, test = test_batch. Images sorted into class folders are an ImageFolder tree.
- A flat folder of `<wnid>_<name>.<ext>` files (like the shared ImageNet samples) is labelled
  by the wnid prefix; any other flat folder is one class, "unlabelled".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet.data.cifar import CIFAR_TEST, CIFAR_TRAIN, cifar_contents
from alexnet.data.folders import IMAGE_SUFFIXES, is_image_name, is_prepared, walk_images
from alexnet.data.ilsvrc import (
    GROUND_TRUTH,
    KAGGLE_CSV,
    WNID,
    devkit_labels,
    kaggle_labels,
    names_for,
    read_class_file,
    search_up,
)
from alexnet.data.store import open_store
from alexnet.errors import UserError


@dataclass
class Source:
    """What `prepare` reads: refs (source-relative names) with labels, and the classes."""

    kind: str
    root: Path
    refs: list[str]
    labels: np.ndarray                       # int64 [N]
    classes: list[str]
    class_names: list[str]
    reader: str = "file"                     # "file" or "cifar"
    unlabelled: list[dict] = field(default_factory=list)  # files left out, with the reason
    notes: list[str] = field(default_factory=list)


def find_source(src: str | os.PathLike, split: str | None = None, labels: str | None = None,
                devkit: str | None = None) -> Source:
    """Recognise the layout at `src` and list its images; UserError when there is none."""
    root = Path(src).expanduser()
    if not root.exists():
        raise UserError(f"no such file or folder: {root}")
    if root.is_file():
        if root.name in [*CIFAR_TRAIN, CIFAR_TEST]:
            _labels_unused(labels, devkit, root, "a CIFAR-10 batch, labelled by itself")
            return cifar_python(root.parent, [root.name])
        raise UserError(f"{root} is a file; give a folder of images, an ILSVRC folder or a "
                        f"CIFAR-10 python folder")
    try:
        entries = sorted(root.iterdir())
    except OSError as err:
        raise UserError(f"cannot read the folder {str(root)!r} ({err.strerror or err})") from None
    if (root / "batches.meta").is_file() or (root / "data_batch_1").is_file():
        if split not in (None, "train", "test"):
            raise UserError(f"unknown CIFAR-10 split {split!r}; valid splits: train, test")
        _labels_unused(labels, devkit, root, "a CIFAR-10 python folder, labelled by its "
                       "batches")
        return cifar_python(root, [CIFAR_TEST] if split == "test" else CIFAR_TRAIN)
    subdirs = [d for d in entries if d.is_dir() and not d.name.startswith(".")]
    stores = [d for d in subdirs if is_prepared(d)]
    walked = {d.name: walk_images(d, root) for d in subdirs if d not in stores}
    # An unreadable class folder stays a class: dropping it would shift every later label.
    walks = {k: w for k, w in walked.items() if w.files or not w.readable}
    flat = [p for p in entries if p.is_file() and is_image_name(p.name)]
    # A flat validation folder with a stray sub-folder is still a flat folder.
    if walks and len(flat) <= sum(len(w.files) for w in walks.values()):
        _labels_unused(labels, devkit, root, "an image folder, labelled by its class "
                       "sub-folders")
        source = image_folder(root, {k: w.files for k, w in walks.items()}, flat)
        source.unlabelled += [p for w in walked.values() for p in w.problems]
        source.notes += [n for w in walked.values() for n in w.notes]
        source.notes += [f"{d.name}: a prepared store, not read as images" for d in stores]
        return source
    if not flat:
        raise UserError(f"no images found in {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}"
                        f" files, in class sub-folders or at the top level)")
    return flat_folder(root, flat, labels, devkit)


def _labels_unused(labels: str | None, devkit: str | None, root: Path, what: str) -> None:
    """--labels and --devkit label a flat ILSVRC-2012 validation folder; for any other
    source they would be ignored, so they are refused."""
    for option, value in (("--labels", labels), ("--devkit", devkit)):
        if value is not None:
            raise UserError(f"{option} {value} is for a flat ILSVRC-2012 validation folder, "
                            f"but {root} is {what}; leave {option} out")


def image_folder(root: Path, class_files: dict[str, list[Path]], flat: list[Path]) -> Source:
    classes = sorted(class_files)
    refs, labels = [], []
    for label, name in enumerate(classes):
        refs += [p.relative_to(root).as_posix() for p in class_files[name]]
        labels += [label] * len(class_files[name])
    notes = [f"{len(flat)} images at the top level ignored (not in a class folder)"] if flat else []
    return Source("image-folder", root, refs, np.asarray(labels, np.int64), classes,
                  names_for(classes, root), notes=notes)


def flat_folder(root: Path, files: list[Path], labels: str | None, devkit: str | None) -> Source:
    ground_truth = Path(labels) if labels else search_up(root, [GROUND_TRUTH, KAGGLE_CSV])
    if labels and not ground_truth.is_file():
        raise UserError(f"labels file not found: {ground_truth}")
    if ground_truth is not None:
        kaggle = ground_truth.suffix.lower() == ".csv"
        found = kaggle_labels(root, files, ground_truth) if kaggle else \
            devkit_labels(files, ground_truth, devkit)
        return Source("ilsvrc-val-kaggle" if kaggle else "ilsvrc-val-devkit", root, found.refs,
                      np.asarray(found.labels, np.int64), found.classes, found.names,
                      unlabelled=found.unlabelled, notes=found.notes)
    prefixes = [p.name.split("_", 1)[0] for p in files]
    if all(WNID.match(w) for w in prefixes):
        classes = sorted(set(prefixes))
        index = {w: i for i, w in enumerate(classes)}
        names = {p.name.split("_", 1)[0]: Path(p.name.split("_", 1)[-1]).stem.replace("_", " ")
                 for p in files}
        return Source("wnid-prefixed-files", root, [p.name for p in files],
                      np.asarray([index[w] for w in prefixes], np.int64), classes,
                      [names[w] for w in classes])
    return Source("unlabelled-folder", root, [p.name for p in files],
                  np.zeros(len(files), np.int64), ["unlabelled"], ["unlabelled"],
                  notes=["no class folders or labels file: every image has label 0"])


def cifar_python(root: Path, batches: list[str]) -> Source:
    refs, labels, classes = cifar_contents(root, batches)
    return Source("cifar10-python", root, refs, np.asarray(labels, np.int64), classes,
                  list(classes), reader="cifar")


def read_class_list(spec: str | os.PathLike, option: str = "--classes"
                    ) -> tuple[list[str], list[str]]:
    """(class ids, names) from a prepared store or a text file of classes, one per line
    (`ilsvrc.read_class_file`); UserError naming `option` when it is neither."""
    path = Path(spec).expanduser()
    if (path / "manifest.json").is_file():
        store = open_store(path)      # its manifest checked
        return list(store.classes), list(store.class_names)
    if not path.is_file():
        raise UserError(f"{option} {path}: neither a prepared store nor a class list file "
                        f"(it does not exist)")
    return read_class_file(path)


def remap_classes(source: Source, classes: list[str], names: list[str]) -> Source:
    """The same images labelled by their position in `classes` (e.g. the training store's,
    for a validation folder that lacks some classes)."""
    index = {c: i for i, c in enumerate(classes)}
    missing = [c for c in source.classes if c not in index]
    if missing:
        raise UserError(f"{len(missing)} classes of {source.root} are not in the given class "
                        f"list (first: {missing[0]!r})")
    mapping = np.asarray([index[c] for c in source.classes], np.int64)
    labels = mapping[source.labels] if len(source.labels) else source.labels
    return Source(source.kind, source.root, source.refs, labels, list(classes), list(names),
                  source.reader, source.unlabelled,
                  source.notes + [f"labels mapped onto a list of {len(classes)} classes"])
