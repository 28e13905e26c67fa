"""Data: image sources, the prepared uint8 store, the loader and on-device augmentation.

`open_store` (store.py), `prepare_store` (prepare/) and `ensure_store` (cache.py) are
imported lazily, so `alexnet --help` loads none of them; none of the three imports torch.
"""

from __future__ import annotations

__all__ = ["open_store", "prepare_store", "ensure_store"]


def __getattr__(name: str):
    if name == "open_store":
        from alexnet.data.store import open_store
        return open_store
    if name == "prepare_store":
        from alexnet.data.prepare import prepare_store
        return prepare_store
    if name == "ensure_store":
        from alexnet.data.cache import ensure_store
        return ensure_store
    raise AttributeError(f"module 'alexnet.data' has no attribute {name!r}")
