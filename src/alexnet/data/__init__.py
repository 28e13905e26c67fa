"""Data: image sources, the prepared uint8 store, the loader and on-device augmentation."""
