"""CIFAR-10's python format (`cifar-10-batches-py`): pickled batches of 3072-value rows.

The batches are pickles, read with an unpickler that builds only what they hold (dicts,
lists, numpy arrays): a crafted batch cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from alexnet.errors import UserError

CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = "test_batch"


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


def cifar_contents(root: Path, batches: list[str]) -> tuple[list[str], list[int], list[str]]:
    """(refs "batch/row", labels, class names) of `batches` in the folder `root`."""
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
    return refs, labels, classes
