"""Finding image files: the one list of image suffixes and the one folder walker.

Everything that looks for images in folders (`prepare`'s sources, `predict`, the benchmarks)
walks them here, so all agree on what counts: files with an image suffix; hidden files and
folders (a name starting with ".", such as macOS's `._photo.jpg`) and prepared stores kept
inside are not images. Links to folders are followed, but no folder is read twice.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from alexnet.data.store import PARTIAL_SUFFIX, is_store

# Each image suffix, with the format Pillow names for the data such a file should hold.
IMAGE_SUFFIXES = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP",
                  ".bmp": "BMP", ".gif": "GIF", ".tif": "TIFF", ".tiff": "TIFF", ".ppm": "PPM"}


CANNOT_READ_FOLDER = "cannot read folder"   # how a folder that cannot be listed is reported


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def is_prepared(folder: Path) -> bool:
    """A store made by `alexnet prepare` (or one being made): data, not a class of images."""
    if is_store(folder):
        return True
    try:     # a folder without search permission: not a store, reported by its walker
        return folder.name.endswith(PARTIAL_SUFFIX) and (folder / "plan.json").is_file()
    except OSError:
        return False


@dataclass
class Walk:
    """What `walk_images` found below one folder."""

    files: list[Path] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)  # {"file", "reason"}, like skipped files
    notes: list[str] = field(default_factory=list)
    readable: bool = True                               # the folder itself could be listed


def _inodes(paths) -> set[tuple[int, int]]:
    found = set()
    for path in paths:
        with contextlib.suppress(OSError):
            st = os.stat(path)
            found.add((st.st_dev, st.st_ino))
    return found


def walk_images(folder: Path, root: Path) -> Walk:
    """Image files below `folder`, sorted (a folder's files, then its sub-folders in order),
    skipping hidden entries and prepared stores. Links to folders are followed, but no folder
    is entered twice (compared by device and inode), nor `folder`, `root` or anything above
    them: such a link is a loop, reported with the folders that cannot be read. Names in the
    report are relative to `root`."""
    walk = Walk()
    # `root` itself counts when walking a folder below it (a class folder linking back to it).
    above_root = _inodes([*([root] if Path(folder) != Path(root) else []),
                          *Path(os.path.realpath(root)).parents])
    if _inodes([folder]) & above_root:
        walk.problems.append({"file": folder.name + "/", "reason": (
            "a link to the source folder or above it (a loop); not followed")})
        return walk
    seen = above_root | _inodes([folder, *Path(os.path.realpath(folder)).parents])
    stack = [folder]
    while stack:
        here = stack.pop()
        try:
            with os.scandir(here) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            walk.problems.append({"file": _name(here, root) + "/",
                                  "reason": f"{CANNOT_READ_FOLDER}: {err.strerror or err}"})
            walk.readable = walk.readable and here != folder
            continue
        stack.extend(reversed(_read_entries(entries, root, seen, walk)))
    return walk


def _read_entries(entries, root: Path, seen: set, walk: Walk) -> list[Path]:
    """Add the image files among `entries` to `walk`; returns the sub-folders to enter."""
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
            walk.problems.append({"file": _name(path, root) + "/",
                                  "reason": f"{CANNOT_READ_FOLDER}: {err.strerror or err}"})
            continue
        if (st.st_dev, st.st_ino) in seen:
            walk.problems.append({"file": _name(path, root) + "/", "reason": (
                "a link to a folder already read or above it (a loop); not followed")})
            continue
        seen.add((st.st_dev, st.st_ino))
        if is_prepared(path):
            walk.notes.append(f"{_name(path, root)}: a prepared store, not read as images")
            continue
        subfolders.append(path)
    return subfolders


def _name(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def image_files(folder: Path) -> list[Path]:
    """Every image file below `folder`, sorted by path (what `predict` and the benchmarks
    read)."""
    return sorted(walk_images(Path(folder), Path(folder)).files)
