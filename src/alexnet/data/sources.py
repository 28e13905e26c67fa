"""Where images come from: every layout is read into (files, labels, classes, class names).

- ImageFolder trees: `root/<class>/**/<image>`; classes are the sorted sub-folder names that
  hold at least one image (or cannot be read: reported, and kept so later labels do not
  shift); hidden files and folders are ignored, so are non-image files and prepared stores
  kept inside. Links to folders are followed, but a folder is never read twice within a
  class: a link back to a folder on its own path (a loop) is reported, not followed.
- ILSVRC-2012 validation as a flat folder, labelled by the devkit
  (`ILSVRC2012_validation_ground_truth.txt` + `meta.mat`) or by Kaggle's
  `LOC_val_solution.csv`, mapped to the same sorted-wnid class indices as training; already
  sorted into wnid folders it is an ImageFolder tree.
- CIFAR-10 in its python format (`cifar-10-batches-py`): train = data_batch_1..5, test =
  test_batch. Images sorted into class folders are an ImageFolder tree.
- A flat folder of `<wnid>_<name>.<ext>` files (like the shared ImageNet samples) is labelled
  by the wnid prefix; any other flat folder is one class, "unlabelled".
"""

from __future__ import annotations

import contextlib
import csv
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet.errors import UserError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm"}
WNID = re.compile(r"^n\d{8}$")
VAL_NUMBER = re.compile(r"ILSVRC2012_val_(\d{8})")
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
KAGGLE_CSV, KAGGLE_SYNSETS = "LOC_val_solution.csv", "LOC_synset_mapping.txt"
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


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

    def describe(self) -> dict:
        return {"kind": self.kind, "root": str(self.root), "images": len(self.refs),
                "classes": len(self.classes), "notes": self.notes}


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _is_prepared(folder: Path) -> bool:
    """A store made by `alexnet prepare` (or one being made): data, not a class of images."""
    from alexnet.data.store import PARTIAL_SUFFIX, is_store

    return is_store(folder) or (folder.name.endswith(PARTIAL_SUFFIX)
                                and (folder / "plan.json").is_file())


@dataclass
class Walk:
    """What `walk_images` found below one folder."""

    files: list[Path] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)  # {"file", "reason"}, like skipped files
    notes: list[str] = field(default_factory=list)
    readable: bool = True                               # the folder itself could be listed


def walk_images(folder: Path, root: Path) -> Walk:
    """Image files below `folder`, sorted (a folder's files, then its sub-folders in order),
    skipping hidden entries and prepared stores. Links to folders are followed, but no folder
    is entered twice (compared by device and inode), nor `folder`, `root` or anything above
    them: such a link is a loop, reported with the folders that cannot be read."""
    walk = Walk()

    def inodes(paths) -> set[tuple[int, int]]:
        found = set()
        for path in paths:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                found.add((st.st_dev, st.st_ino))
        return found

    above_root = inodes([root, *Path(os.path.realpath(root)).parents])
    if inodes([folder]) & above_root:
        walk.problems.append({"file": folder.name + "/", "reason": (
            "a link to the source folder or above it (a loop); not followed")})
        return walk
    seen = above_root | inodes([folder, *Path(os.path.realpath(folder)).parents])

    def name(path: Path) -> str:
        return path.relative_to(root).as_posix()

    stack = [folder]
    while stack:
        here = stack.pop()
        try:
            with os.scandir(here) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            walk.problems.append({"file": name(here) + "/",
                                  "reason": f"cannot read folder: {err.strerror or err}"})
            walk.readable = walk.readable and here != folder
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()            # follows links
            except OSError:
                is_dir = False
            if not is_dir:
                if is_image_name(entry.name):
                    walk.files.append(Path(entry.path))
                continue
            path = Path(entry.path)
            try:
                st = os.stat(path)
            except OSError as err:
                walk.problems.append({"file": name(path) + "/",
                                      "reason": f"cannot read folder: {err.strerror or err}"})
                continue
            if (st.st_dev, st.st_ino) in seen:
                walk.problems.append({"file": name(path) + "/", "reason": (
                    "a link to a folder already read or above it (a loop); not followed")})
                continue
            seen.add((st.st_dev, st.st_ino))
            if _is_prepared(path):
                walk.notes.append(f"{name(path)}: a prepared store, not read as images")
                continue
            subfolders.append(path)
        stack.extend(reversed(subfolders))
    return walk


def find_source(src: str | os.PathLike, split: str | None = None, labels: str | None = None,
                devkit: str | None = None) -> Source:
    """Recognise the layout at `src` and list its images; UserError when there is none."""
    root = Path(src).expanduser()
    if not root.exists():
        raise UserError(f"no such file or folder: {root}")
    if root.is_file():
        if root.name in CIFAR_TRAIN + ["test_batch"]:
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
        return cifar_python(root, ["test_batch"] if split == "test" else CIFAR_TRAIN)
    subdirs = [d for d in entries if d.is_dir() and not d.name.startswith(".")]
    stores = [d for d in subdirs if _is_prepared(d)]
    walked = {d.name: walk_images(d, root) for d in subdirs if d not in stores}
    # An unreadable class folder stays a class: dropping it would shift every later label.
    walks = {k: w for k, w in walked.items() if w.files or not w.readable}
    flat = [p for p in entries if p.is_file() and is_image_name(p.name)]
    # A flat validation folder with a stray sub-folder is still a flat folder.
    if walks and len(flat) <= sum(len(w.files) for w in walks.values()):
        source = image_folder(root, {k: w.files for k, w in walks.items()}, flat)
        source.unlabelled += [p for w in walked.values() for p in w.problems]
        source.notes += [n for w in walked.values() for n in w.notes]
        source.notes += [f"{d.name}: a prepared store, not read as images" for d in stores]
        return source
    if not flat:
        raise UserError(f"no images found in {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}"
                        f" files, in class sub-folders or at the top level)")
    return flat_folder(root, flat, labels, devkit)


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
    ground_truth = Path(labels) if labels else _search_up(root, [GROUND_TRUTH, KAGGLE_CSV])
    if labels and not ground_truth.is_file():
        raise UserError(f"labels file not found: {ground_truth}")
    if ground_truth is not None and ground_truth.suffix.lower() == ".csv":
        return kaggle_val(root, files, ground_truth)
    if ground_truth is not None:
        return devkit_val(root, files, ground_truth, devkit)
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


def _search_up(root: Path, names: list[str], levels: int = 4) -> Path | None:
    """The first of `names` in root, its parents, or a devkit `data/` folder beside them."""
    for folder in [root, *list(root.parents)[:levels]]:
        for name in names:
            candidates = [folder / name, *sorted(folder.glob(f"*devkit*/data/{name}"))]
            for candidate in candidates:
                if candidate.is_file():
                    return candidate
    return None


def devkit_val(root: Path, files: list[Path], ground_truth: Path, devkit: str | None) -> Source:
    meta = Path(devkit) if devkit else ground_truth.parent
    meta = meta / "meta.mat" if meta.is_dir() else meta
    if not meta.is_file():
        raise UserError(f"{ground_truth} needs the devkit's meta.mat to map its class ids to "
                        f"wnids; not found at {meta} (pass --devkit DIR)")
    id_to_wnid, wnid_names = read_meta_mat(meta)
    classes = sorted(wnid_names)
    index = {w: i for i, w in enumerate(classes)}
    truth = [int(line) for line in ground_truth.read_text().split()]
    refs, labels, unlabelled = [], [], []
    for path in files:
        match = VAL_NUMBER.search(path.name)
        number = int(match.group(1)) if match else 0
        if not 1 <= number <= len(truth) or truth[number - 1] not in id_to_wnid:
            unlabelled.append({"file": path.name, "reason": f"no label in {ground_truth.name}"})
            continue
        refs.append(path.name)
        labels.append(index[id_to_wnid[truth[number - 1]]])
    return Source("ilsvrc-val-devkit", root, refs, np.asarray(labels, np.int64), classes,
                  [wnid_names[w] for w in classes], unlabelled=unlabelled,
                  notes=[f"labels from {ground_truth} and {meta}"])


def read_meta_mat(meta: Path) -> tuple[dict[int, str], dict[str, str]]:
    """({ILSVRC2012_ID: wnid}, {wnid: words}) for the leaf synsets (the classes) of meta.mat."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise UserError(f"reading {meta} needs scipy (pip install scipy)") from None
    try:
        synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
    except Exception as err:  # scipy raises several types for a bad file
        raise UserError(f"{meta} is not a readable ILSVRC devkit meta.mat ({err})") from None
    id_to_wnid, names = {}, {}
    for s in np.atleast_1d(synsets):
        if int(s["num_children"]) != 0:
            continue
        wnid = str(s["WNID"])
        id_to_wnid[int(s["ILSVRC2012_ID"])] = wnid
        names[wnid] = str(s["words"])
    return id_to_wnid, names


def kaggle_val(root: Path, files: list[Path], solution: Path) -> Source:
    truth = {}
    with open(solution, newline="") as f:
        for row in csv.DictReader(f):
            tokens = (row.get("PredictionString") or "").split()
            if row.get("ImageId") and tokens:
                truth[row["ImageId"]] = tokens[0]
    mapping = solution.parent / KAGGLE_SYNSETS
    if mapping.is_file():
        pairs = [line.split(" ", 1) for line in mapping.read_text().splitlines() if line.strip()]
        names = {p[0]: (p[1] if len(p) > 1 else p[0]) for p in pairs}
        classes = sorted(names)
    else:
        classes = sorted(set(truth.values()))
        names = dict(zip(classes, names_for(classes, root), strict=True))
    index = {w: i for i, w in enumerate(classes)}
    refs, labels, unlabelled = [], [], []
    for path in files:
        wnid = truth.get(path.stem)
        if wnid is None or wnid not in index:
            unlabelled.append({"file": path.name, "reason": f"no label in {solution.name}"})
            continue
        refs.append(path.name)
        labels.append(index[wnid])
    return Source("ilsvrc-val-kaggle", root, refs, np.asarray(labels, np.int64), classes,
                  [names[w] for w in classes], unlabelled=unlabelled,
                  notes=[f"labels from {solution}"])


def names_for(classes: list[str], root: Path | None = None) -> list[str]:
    """Human-readable names: ImageNet's for the 1000 sorted ILSVRC wnids, else the ids."""
    if len(classes) == 1000 and all(WNID.match(c) for c in classes) and classes == sorted(classes):
        meta = _search_up(root, ["meta.mat"]) if root is not None else None
        if meta is not None:
            try:
                return [read_meta_mat(meta)[1].get(c, c) for c in classes]
            except UserError:
                pass
        try:
            from torchvision.models import AlexNet_Weights

            return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])
        except ImportError:
            pass
    return list(classes)


class _SafeUnpickler(pickle.Unpickler):
    """CIFAR's batches are pickles: allow only what they hold (dicts, lists, numpy arrays)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("builtins", "bytes"),
               ("_codecs", "encode")}  # how protocol-2 pickles from Python 3 store bytes

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")


def read_cifar_batch(path: Path) -> dict:
    """{b"data": uint8 [N, 3072], b"labels": [N], ...} from a CIFAR-10 python batch."""
    try:
        with open(path, "rb") as f:
            batch = _SafeUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
    except (OSError, pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError) as err:
        raise UserError(f"{path} is not a readable CIFAR-10 python batch ({err})") from None
    return {**batch, b"data": data.reshape(len(data), 3072)}


def cifar_row(data: np.ndarray, row: int) -> np.ndarray:
    """One CIFAR row (3072 values: the R plane, then G, then B) as uint8 [32, 32, 3]."""
    return data[row].reshape(3, 32, 32).transpose(1, 2, 0)


def cifar_python(root: Path, batches: list[str]) -> Source:
    missing = [b for b in batches if not (root / b).is_file()]
    if missing:
        raise UserError(f"CIFAR-10 batches missing in {root}: {', '.join(missing)}")
    meta_file = root / "batches.meta"
    classes = [f"class_{i}" for i in range(10)]
    if meta_file.is_file():
        with open(meta_file, "rb") as f:
            meta = _SafeUnpickler(f, encoding="bytes").load()
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"label_names"]]
    refs, labels = [], []
    for name in batches:
        batch_labels = read_cifar_batch(root / name)[b"labels"]
        refs += [f"{name}/{row:05d}" for row in range(len(batch_labels))]
        labels += list(batch_labels)
    return Source("cifar10-python", root, refs, np.asarray(labels, np.int64), classes,
                  list(classes), reader="cifar")


def read_class_list(spec: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(class ids, names) from a prepared store or a text file of `id [name]` lines."""
    path = Path(spec).expanduser()
    if (path / "manifest.json").is_file():
        from alexnet.data.store import open_store

        store = open_store(path)      # its manifest checked
        return list(store.classes), list(store.class_names)
    if not path.is_file():
        raise UserError(f"--classes {path}: neither a prepared store nor a class list file")
    pairs = [line.strip().split(None, 1) for line in path.read_text().splitlines()
             if line.strip()]
    return [p[0] for p in pairs], [p[1] if len(p) > 1 else p[0] for p in pairs]


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
