"""What a training run reads: the store (given, prepared on the fly, or downloaded),
the held-out validation split, and the preprocessing the network's inputs go through."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from alexnet.config import Config
from alexnet.data.preprocess import IMAGENET_CHANNEL_MEAN, IMAGENET_CHANNEL_STD, Preprocessing
from alexnet.errors import UserError


def cache_root() -> Path:
    """The user cache for downloads and prepared stores (`$ALEXNET_CACHE` overrides it)."""
    return Path(os.environ.get("ALEXNET_CACHE", "~/.cache/alexnet")).expanduser()


def download_cifar10(root: Path | None = None) -> Path:
    """CIFAR-10's python batches through torchvision (it verifies the archive's MD5)."""
    from torchvision.datasets import CIFAR10

    root = root or cache_root() / "downloads"
    try:
        CIFAR10(str(root), train=True, download=True)
    except (OSError, RuntimeError) as err:   # URLError is an OSError
        raise UserError(f"could not download CIFAR-10 into {str(root)!r} ({err}); pass "
                        f"images you have with --data PATH (an image folder with one "
                        f"sub-folder per class, or a prepared store)") from None
    return root / "cifar-10-batches-py"


def open_data(config: Config, progress: bool = True, refresh: bool = True):
    """The run's Store: `config.data` prepared at `config.data_size` when needed (again when
    the folder changed, if `refresh`), or for the cifar10 recipe without data, CIFAR-10
    downloaded into the user cache."""
    from alexnet.data import ensure_store

    if config.data:
        path = Path(config.data).expanduser()
        if not path.exists():
            raise UserError(f"data path {str(path)!r} does not exist")
        if path.is_dir() and not any(path.iterdir()):
            raise UserError(f"data path {str(path)!r} is an empty folder")
    elif config.recipe == "cifar10":
        path = download_cifar10()
    else:
        raise UserError(f"recipe {config.recipe!r} needs training images: pass --data PATH "
                        f"(an ImageNet-style folder or a prepared store)")
    store = ensure_store(str(path), config.data_size, refresh=refresh)
    if store.size != config.data_size:
        raise UserError(f"the store at {str(store.path)!r} holds {store.size}x{store.size} "
                        f"images but the run expects data_size={config.data_size}")
    if len(store) == 0:
        raise UserError(f"the store at {str(store.path)!r} holds no images")
    return store


def cifar_python_folder(config: Config) -> Path | None:
    """The CIFAR-10 python folder the run trains from (downloaded or given), if it is one."""
    if not config.data:
        return cache_root() / "downloads" / "cifar-10-batches-py" \
            if config.recipe == "cifar10" else None
    path = Path(config.data).expanduser()
    return path if (path / "batches.meta").is_file() else None


def open_test_store(config: Config):
    """CIFAR-10's official test split (test_batch) as a store, when the run trains from
    CIFAR-10's python folder; None otherwise. Never used for validation or model choice."""
    import hashlib

    from alexnet.data import open_store, prepare_store

    folder = cifar_python_folder(config)
    if folder is None or not (folder / "test_batch").is_file():
        return None
    key = hashlib.sha256(f"{folder.resolve()}|{config.data_size}".encode()).hexdigest()[:16]
    out = cache_root() / "stores" / f"cifar10-test-{config.data_size}-{key}"
    prepare_store(folder, out, size=config.data_size, split="test", progress=False)
    return open_store(out)


def split_validation(labels: np.ndarray, per_class: int, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices), both sorted: `per_class` images of every class,
    drawn with `seed`, are held out; a class always keeps at least one training image."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    val = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = min(per_class, len(members) - 1)
        if k > 0:
            val.append(rng.permutation(members)[:k])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def make_preprocessing(store, config: Config) -> Preprocessing:
    """The recipe's input normalisation, built from the store's statistics.

    mean-image: subtract the mean image (the paper); mean-image-std: also divide each
    channel by its standard deviation over the training pixels; imagenet: torchvision's
    per-channel ImageNet mean and std.
    """
    if config.normalize == "imagenet":
        return Preprocessing(size=store.size, crop=config.crop,
                             channel_mean=IMAGENET_CHANNEL_MEAN, channel_std=IMAGENET_CHANNEL_STD)
    base = store.preprocessing(config.crop)
    if config.normalize == "mean-image":
        return base
    # Per-channel variance = diagonal of the RGB covariance, eigvecs @ diag(eigvals) @ eigvecs^T.
    vecs, vals = np.asarray(store.eigvecs, np.float64), np.asarray(store.eigvals, np.float64)
    std = np.sqrt(np.clip(((vecs ** 2) * vals[None, :]).sum(axis=1), 1e-6, None))
    return Preprocessing(size=base.size, crop=base.crop, mean_image=base.mean_image,
                         channel_std=tuple(float(s) for s in std))


def check_classes(store, classes: list[str], what: str) -> None:
    """A store must name the same classes, in the same order, as the checkpoint it feeds."""
    if list(store.classes) == list(classes):
        return
    ours, theirs = list(store.classes), list(classes)
    if len(ours) != len(theirs):
        detail = f"{len(ours)} classes vs {len(theirs)}"
    else:
        i = next(i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b)
        detail = f"class {i} is {ours[i]!r} vs {theirs[i]!r}"
    raise UserError(f"the classes of the store at {str(store.path)!r} differ from those of "
                    f"{what} ({detail})")


def open_eval_store(data: str | None, size: int):
    """The store to evaluate on: `data` prepared at `size` when it is an image folder."""
    from alexnet.data import ensure_store

    if not data:
        raise UserError("pass the images to evaluate on with --data PATH")
    path = Path(data).expanduser()
    if not path.exists():
        raise UserError(f"data path {str(path)!r} does not exist")
    if path.is_dir() and not any(path.iterdir()):
        raise UserError(f"data path {str(path)!r} is an empty folder")
    store = ensure_store(str(path), size)
    if store.size != size:
        raise UserError(f"the store at {str(store.path)!r} holds {store.size}x{store.size} "
                        f"images but the checkpoint expects {size}x{size}")
    return store


def held_out_indices(store, meta: dict) -> np.ndarray:
    """The validation split a checkpoint's run held out of this store (same config)."""
    config = meta.get("config") or {}
    if "val_per_class" not in config:
        raise UserError("the checkpoint does not record its training config, so its "
                        "held-out split is unknown; use --split all")
    return split_validation(store.labels, int(config["val_per_class"]),
                            int(config.get("seed", 0)))[1]
