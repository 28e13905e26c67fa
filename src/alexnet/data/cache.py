"""The user cache: downloads and the stores prepared from folders, under one root.

`cache_root()` is `$ALEXNET_CACHE`, else `$XDG_CACHE_HOME/alexnet`, else `~/.cache/alexnet`.
Below it: `downloads/` (CIFAR-10), `stores/` (folders prepared once by `ensure_store`, one
store per folder and image size) and `features/` (`alexnet figures neighbours`).
"""

from __future__ import annotations

import os
from pathlib import Path

from alexnet.console import info
from alexnet.data.prepare import SourceOptions, prepare_store, report_skipped
from alexnet.data.store import MANIFEST, is_store, open_store
from alexnet.errors import UserError
from alexnet.files import cache_root, sha256_hex

CIFAR10_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"
OFFLINE_HINT = (f"get CIFAR-10's python version from {CIFAR10_PAGE} another way and pass it "
                f"unpacked: --data path/to/cifar-10-batches-py (or --data path/to/images: an "
                f"image folder with one sub-folder per class, or a prepared store)")


def cached_store_path(source: Path, size: int, name: str | None = None) -> Path:
    """Where the store prepared from the folder `source` at `size` is cached:
    `stores/<name>-<size>-<hash of the folder's path and size>` (name: the folder's)."""
    resolved = Path(source).expanduser().resolve()
    key = sha256_hex(f"{resolved}|{size}")[:16]
    return cache_root() / "stores" / f"{name or resolved.name}-{size}-{key}"


def ensure_store(data_path, size: int, cache_dir=None, refresh: bool = True, *,
                 split: str | None = None, name: str | None = None, progress: bool = True,
                 check=None):
    """A Store for `data_path`: opened as is when it is a store, else prepared once into the
    cache (`cached_store_path`, or below `cache_dir`) and opened; prepared again when the
    folder changed since, unless `refresh` is False (a distributed rank after rank 0 has just
    done so). split: the CIFAR-10 python split; name: the cached store's name; check: called
    with a folder's listed source before it is prepared (see `prepare_store`)."""
    if not str(data_path).strip():
        raise UserError("--data is empty; give a prepared store or an image folder")
    path = Path(data_path).expanduser()
    # A folder with a manifest that is not a store's (damaged: a list, not JSON) is a store
    # to refuse by what is wrong with it, not a source folder holding "no images".
    if is_store(path) or os.path.lexists(path / MANIFEST):
        store = open_store(path)
        if store.size != size:
            raise UserError(f"{path} holds {store.size}x{store.size} images but {size}x{size} "
                            f"are needed; prepare it with --size {size}")
        return store
    if not path.exists():
        raise UserError(f"data path {str(path)!r} does not exist")
    if path.is_dir() and not any(path.iterdir()):
        raise UserError(f"data path {str(path)!r} is an empty folder")
    out = cached_store_path(path, size, name)
    if cache_dir:
        out = Path(cache_dir).expanduser() / out.name
    if is_store(out) and not refresh:
        return open_store(out)
    announce = not is_store(out) and progress

    def listed(source) -> None:   # the folder is listed; nothing is decoded yet
        if check is not None:
            check(source)
        if announce:
            info(f"preparing {path} once into {out}")

    out.parent.mkdir(parents=True, exist_ok=True)
    summary = prepare_store(path, out, size=size, progress=progress,
                            source=SourceOptions(split=split), check=listed)
    if progress and summary["status"] == "prepared":
        report_skipped(summary, limit=5)
    return open_store(out)


def cifar10_download_folder() -> Path:
    """Where `download_cifar10` puts CIFAR-10's python batches."""
    return cache_root() / "downloads" / "cifar-10-batches-py"


def download_cifar10(root: Path | None = None) -> Path:
    """CIFAR-10's python batches through torchvision (it verifies the archive's MD5)."""
    import urllib.error

    from torchvision.datasets import CIFAR10

    root = root or cifar10_download_folder().parent
    try:
        CIFAR10(str(root), train=True, download=True)
    except (urllib.error.URLError, ConnectionError, TimeoutError):   # before OSError: subclasses
        raise UserError(f"could not download CIFAR-10 (no network connection?); "
                        f"{OFFLINE_HINT}") from None
    except OSError as err:
        where = err.filename or str(root)
        raise UserError(f"could not write the CIFAR-10 download into {str(where)!r} "
                        f"({err.strerror or type(err).__name__}); {OFFLINE_HINT}") from None
    except RuntimeError:   # torchvision: the archive failed its MD5 check
        raise UserError(f"the CIFAR-10 download in {str(root)!r} is damaged; delete it and try "
                        f"again, or {OFFLINE_HINT}") from None
    return root / "cifar-10-batches-py"
