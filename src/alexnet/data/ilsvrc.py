"""ILSVRC-2012's label files: the devkit (ground truth + meta.mat), Kaggle's CSV, class lists.

The validation images are a flat folder labelled by the devkit
(`ILSVRC2012_validation_ground_truth.txt` + `meta.mat`) or by Kaggle's `LOC_val_solution.csv`;
both map to the sorted wnids, the class indices of training. Class lists are text files of
one class per line, where a `<wnid> <words>` line (ImageNet's `LOC_synset_mapping.txt`)
gives a wnid and its name.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet.errors import UserError

WNID = re.compile(r"^n\d{8}$")
VAL_NUMBER = re.compile(r"ILSVRC2012_val_(\d{8})")
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
KAGGLE_CSV, KAGGLE_SYNSETS = "LOC_val_solution.csv", "LOC_synset_mapping.txt"


@dataclass
class Labelled:
    """The labelled files of a flat validation folder, and the files left out."""

    refs: list[str]
    labels: list[int]
    classes: list[str]
    names: list[str]
    unlabelled: list[dict]          # {"file", "reason"}
    notes: list[str]


def read_class_file(path: Path) -> tuple[list[str], list[str]]:
    """(class ids, names) from a text file, one class per line (blank lines ignored): a line
    `<wnid> <words>` gives the wnid as the id and the words as its name; any other line is
    both."""
    classes, names = [], []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        first, _, rest = line.partition(" ")
        is_wnid = bool(WNID.match(first)) and bool(rest.strip())
        classes.append(first if is_wnid else line)
        names.append(rest.strip() if is_wnid else line)
    return classes, names


def search_up(root: Path, names: list[str], levels: int = 4) -> Path | None:
    """The first of `names` in root, its parents, or a devkit `data/` folder beside them."""
    for folder in [root, *list(root.parents)[:levels]]:
        for name in names:
            candidates = [folder / name, *sorted(folder.glob(f"*devkit*/data/{name}"))]
            for candidate in candidates:
                if candidate.is_file():
                    return candidate
    return None


def devkit_labels(files: list[Path], ground_truth: Path, devkit: str | None) -> Labelled:
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
    return Labelled(refs, labels, classes, [wnid_names[w] for w in classes], unlabelled,
                    [f"labels from {ground_truth} and {meta}"])


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


def kaggle_labels(root: Path, files: list[Path], solution: Path) -> Labelled:
    truth = {}
    with open(solution, newline="") as f:
        for row in csv.DictReader(f):
            tokens = (row.get("PredictionString") or "").split()
            if row.get("ImageId") and tokens:
                truth[row["ImageId"]] = tokens[0]
    mapping = solution.parent / KAGGLE_SYNSETS
    if mapping.is_file():
        names = dict(zip(*read_class_file(mapping), strict=True))
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
    return Labelled(refs, labels, classes, [names[w] for w in classes], unlabelled,
                    [f"labels from {solution}"])


def names_for(classes: list[str], root: Path | None = None) -> list[str]:
    """Human-readable names: ImageNet's for the 1000 sorted ILSVRC wnids, else the ids."""
    if len(classes) == 1000 and all(WNID.match(c) for c in classes) and classes == sorted(classes):
        meta = search_up(root, ["meta.mat"]) if root is not None else None
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
