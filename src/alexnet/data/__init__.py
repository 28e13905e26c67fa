"""Data: image sources, the prepared uint8 store, the loader and on-device augmentation.

`open_store`, `prepare_store` and `ensure_store` are imported lazily so that worker
processes and `alexnet --help` do not pay for torch.
"""

from __future__ import annotations

__all__ = ["open_store", "prepare_store", "ensure_store"]


def __getattr__(name: str):
    if name == "open_store":
        from alexnet.data.store import open_store
        return open_store
    if name in ("prepare_store", "ensure_store"):
        from alexnet.data import prepare
        return getattr(prepare, name)
    raise AttributeError(f"module 'alexnet.data' has no attribute {name!r}")
