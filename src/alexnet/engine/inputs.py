"""What a training run reads beyond its store: the held-out validation split (drawn, recorded
in the checkpoints, redrawn and checked by `eval --split held-out`), CIFAR-10's official test
split, and the check that a store has a checkpoint's classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alexnet.config import Config
from alexnet.console import info
from alexnet.data.cache import cifar10_download_folder, download_cifar10, ensure_store
from alexnet.data.cifar import CIFAR_TEST
from alexnet.data.normalization import Preprocessing
from alexnet.errors import UserError
from alexnet.files import sha256_hex


def open_data(config: Config, refresh: bool = True):
    """The run's Store: `config.data` prepared at `config.data_size` when needed (again when
    the folder changed, if `refresh`), or for the cifar10 recipe without data, CIFAR-10
    downloaded into the user cache."""
    if config.data:
        path = config.data
    elif config.recipe == "cifar10":
        path = download_cifar10()
    else:
        raise UserError(f"recipe {config.recipe!r} needs training images: pass --data PATH "
                        f"(an ImageNet-style folder or a prepared store)")
    store = ensure_store(path, config.data_size, refresh=refresh)
    if len(store) == 0:     # every file of the folder was skipped
        raise UserError(f"the store at {str(store.path)!r} holds no images")
    return store


def cifar_python_folder(config: Config) -> Path | None:
    """The CIFAR-10 python folder the run trains from (downloaded or given), if it is one."""
    if not config.data:
        return cifar10_download_folder() if config.recipe == "cifar10" else None
    path = Path(config.data).expanduser()
    return path if (path / "batches.meta").is_file() else None


def open_test_store(config: Config):
    """CIFAR-10's official test split (test_batch) as a store, when the run trains from
    CIFAR-10's python folder; None otherwise. Never used for validation or model choice."""
    folder = cifar_python_folder(config)
    if folder is None or not (folder / CIFAR_TEST).is_file():
        return None
    return ensure_store(folder, config.data_size, split="test", name="cifar10-test",
                        progress=False)


HELD_OUT_DIVISOR = 10   # at most a tenth of each class is held out


def held_out_count(class_size: int, per_class: int, divisor: int | None = HELD_OUT_DIVISOR
                   ) -> int:
    """How many of a class's `class_size` images are held out: `per_class`, but at most
    1/`divisor` of the class (so a small folder keeps most of its images for training), and
    never the last one. `divisor` None: the rule of checkpoints older than the cap."""
    k = min(per_class, class_size - 1)
    if divisor is not None:
        k = min(k, class_size // divisor)
    return max(k, 0)


def split_validation(labels: np.ndarray, per_class: int, seed: int,
                     divisor: int | None = HELD_OUT_DIVISOR) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices), both sorted: `held_out_count` images of every
    class, drawn with `seed`, are held out; a class always keeps at least one training image."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    val = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = held_out_count(len(members), per_class, divisor)
        # The permutation is drawn for every class, held out or not, so that the cap never
        # changes which images a larger class holds out.
        drawn = rng.permutation(members)[:k]
        if k > 0:
            val.append(drawn)
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def indices_digest(indices: np.ndarray) -> str:
    """A short SHA-256 of a list of image indices (a run's held-out split)."""
    return sha256_hex(np.asarray(indices, dtype="<i8").tobytes())[:16]


def split_record(config: Config, train_idx: np.ndarray, val_idx: np.ndarray) -> dict:
    """What a checkpoint records of its run's split, so `eval --split held-out` can redo and
    check it."""
    return {"seed": config.seed, "val_per_class": config.val_per_class,
            "held_out_divisor": HELD_OUT_DIVISOR, "train_images": len(train_idx),
            "held_out_images": len(val_idx), "held_out_digest": indices_digest(val_idx)}


def check_classes(store, classes: list[str], what: str) -> None:
    """A store (or a source about to be prepared into one: it has a `root` instead of a
    `path`) must name the same classes, in the same order, as the checkpoint it feeds."""
    if list(store.classes) == list(classes):
        return
    ours, theirs = list(store.classes), list(classes)
    if len(ours) != len(theirs):
        detail = f"{len(ours)} classes vs {len(theirs)}"
    else:
        i = next(i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b)
        detail = f"class {i} is {ours[i]!r} vs {theirs[i]!r}"
    where = f"the store at {str(store.path)!r}" if hasattr(store, "path") else \
        f"the images in {str(store.root)!r}"
    raise UserError(f"the classes of {where} differ from those of {what} ({detail})")


def why_none_held_out(val_per_class: int) -> str:
    """Why a split holds out no image: the setting, or classes too small for the cap."""
    if val_per_class == 0:
        return "val_per_class=0"
    return "no class has the 10 images it takes: at most a tenth of each class is held out"


def held_out_indices(store, meta: dict, preprocessing: Preprocessing | None = None
                     ) -> np.ndarray:
    """The validation split a checkpoint's run held out of this store, refused (UserError)
    when the store is not the one the run trained on: the split would then be images the
    network trained on, or never saw, called "held out".

    Checkpoints record their store's fingerprint and their split; older ones are checked by
    their mean image (which is the training store's own), when they have one.
    """
    config = meta.get("config") or {}
    if "val_per_class" not in config:
        raise UserError("the checkpoint does not record its training config, so its "
                        "held-out split is unknown; use --split all")
    _check_training_store(store, meta.get("store"), preprocessing)
    per_class = int(config["val_per_class"])
    split = recorded_split(meta) if per_class > 0 else None    # none held out: said below
    # Checkpoints without a split record predate the cap on the held-out share.
    divisor = split["held_out_divisor"] if split else None
    val_idx = split_validation(store.labels, per_class, int(config.get("seed", 0)), divisor)[1]
    if len(val_idx) == 0:
        raise UserError(f"--split held-out: the checkpoint's run held out no images of "
                        f"{str(store.path)!r} ({why_none_held_out(per_class)}), it trained on "
                        f"all of them; use --split all")
    if split and split["held_out_digest"] != indices_digest(val_idx):
        raise UserError(f"--split held-out refused: the held-out split drawn from "
                        f"{str(store.path)!r} differs from the one the checkpoint's run "
                        f"recorded; use --split all")
    fold_in = int(config.get("fold_in_epoch") or 0)
    if fold_in and int(meta.get("epoch") or 0) > fold_in:
        info(f"note: the network trained on these images too, from epoch {fold_in + 1} on "
             f"(fold_in_epoch={fold_in}); their error is no held-out error")
    return val_idx


def recorded_split(meta: dict) -> dict | None:
    """The split a checkpoint's run recorded ({"held_out_divisor", "held_out_digest", ...}),
    or None for a checkpoint from before such records (it records no store either, and its
    run held out the images of the rule of its time: no cap). UserError when the record is
    missing from a checkpoint that records its store, or is incomplete: drawing the split
    by the old rule would call images the run trained on held out."""
    split = meta.get("split")
    if split is None and not isinstance(meta.get("store"), dict):
        return None
    if isinstance(split, dict) and isinstance(split.get("held_out_digest"), str) and \
            isinstance(split.get("held_out_divisor"), int):
        return split
    entry = "it has no 'split' entry" if split is None else f"its 'split' entry is {split!r}"
    raise UserError(f"--split held-out refused: the checkpoint does not record which images "
                    f"its run held out ({entry}), so they are unknown; use --split all")


def _same_mean_image(store, preprocessing: Preprocessing | None) -> bool:
    """Whether `store`'s mean image is the one a checkpoint was trained with (within 0.01 of
    a grey level: the same images, whatever their files are called)."""
    if preprocessing is None or preprocessing.mean_image is None:
        return False
    mean = np.asarray(store.mean, dtype=np.float32)
    return mean.shape == tuple(preprocessing.mean_image.shape) and bool(np.allclose(
        mean, preprocessing.mean_image.float().numpy(), atol=1e-2))


def trained_on_note(store, meta: dict, preprocessing: Preprocessing | None,
                    name: str) -> str | None:
    """A note for an evaluation of every image of `store` when the checkpoint (`name`)
    trained on them: `store` is its training store (by the recorded fingerprint), or holds
    images with its training images' mean. None when neither is known."""
    recorded = meta.get("store")
    ours = store.fingerprint
    same = isinstance(recorded, dict) and \
        (recorded.get("count"), recorded.get("digest")) == (ours["count"], ours["digest"])
    if not same:
        if not _same_mean_image(store, preprocessing):
            return None
        return (f"note: these {len(store):,} images have the mean image of those {name} "
                f"trained on: most likely it trained on them, and their error is no test "
                f"error")
    config = meta.get("config") or {}
    per_class = config.get("val_per_class")
    fold_in = int(config.get("fold_in_epoch") or 0)
    held = 0
    if isinstance(per_class, int) and per_class > 0 and not (
            fold_in and int(meta.get("epoch") or 0) > fold_in):
        split = meta.get("split") if isinstance(meta.get("split"), dict) else {}
        held = len(split_validation(store.labels, per_class, int(config.get("seed", 0)),
                                    split.get("held_out_divisor"))[1])
    if held == 0:
        return (f"note: {name} trained on all {len(store):,} of these images (its training "
                f"store): this is its training error, not a test error; evaluate it on "
                f"images it never saw")
    return (f"note: {name} trained on {len(store) - held:,} of these {len(store):,} images "
            f"(its training store); --split held-out evaluates only the {held:,} it held out")


def _check_training_store(store, recorded, preprocessing: Preprocessing | None) -> None:
    """`store` is the one a checkpoint trained on: by the fingerprint it `recorded`, else by
    its mean image; a warning when it records neither."""
    if isinstance(recorded, dict):
        ours = store.fingerprint
        if (recorded.get("count"), recorded.get("digest")) != (ours["count"], ours["digest"]):
            raise UserError(
                f"--split held-out refused: the checkpoint was trained on another store "
                f"({recorded.get('count')} images, fingerprint {recorded.get('digest')}) "
                f"than {str(store.path)!r} ({ours['count']} images, fingerprint "
                f"{ours['digest']}), so which of these images it held out is unknown; use "
                f"--split all, or the store it trained on")
    elif preprocessing is not None and preprocessing.mean_image is not None:
        mean = np.asarray(store.mean, dtype=np.float32)
        if mean.shape != tuple(preprocessing.mean_image.shape) or not np.allclose(
                mean, preprocessing.mean_image.float().numpy(), atol=1e-2):
            raise UserError(
                f"--split held-out refused: the mean image of the store at "
                f"{str(store.path)!r} differs from the one the checkpoint was trained with, "
                f"so it is another store and which of its images were held out is unknown; "
                f"use --split all, or the store it trained on")
    else:
        info("warning: this checkpoint does not record its training store, so --split "
             "held-out cannot check that this is the store it held images out of")
