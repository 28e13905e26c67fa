"""What `prepare_store` is asked for: how to read the source, and what store to write."""

from __future__ import annotations

import os
from dataclasses import dataclass

from alexnet.choices import MAX_SIZE
from alexnet.data.prepare.worker import DEFAULT_QUALITY
from alexnet.data.sources import Source, find_source, read_class_list, remap_classes
from alexnet.data.store import ENCODINGS
from alexnet.errors import UserError


@dataclass(frozen=True)
class SourceOptions:
    """How a source is read and labelled; each is found automatically when not given.

    split: CIFAR-10 python "train" (default) or "test"; labels / devkit: an ILSVRC validation
    labels file and devkit folder; classes: a prepared store or class list file whose class
    list (and order) the labels must follow, e.g. the training store's for a validation
    folder."""

    split: str | None = None
    labels: str | None = None
    devkit: str | None = None
    classes: str | os.PathLike | None = None

    def find(self, src: str | os.PathLike) -> Source:
        source = find_source(src, split=self.split, labels=self.labels, devkit=self.devkit)
        if self.classes is not None:
            source = remap_classes(source, *read_class_list(self.classes))
        return source


@dataclass(frozen=True)
class StoreFormat:
    """What a store holds: `size` x `size` images, raw uint8 arrays or JPEGs of `quality`."""

    size: int = 256
    encoding: str = "raw"
    quality: int = DEFAULT_QUALITY

    def check(self) -> StoreFormat:
        if not 1 <= self.size <= MAX_SIZE:
            raise UserError(f"--size must be between 1 and {MAX_SIZE}, got {self.size}")
        if self.encoding not in ENCODINGS:
            raise UserError(f"unknown store format {self.encoding!r}; choose one of "
                            f"{', '.join(ENCODINGS)}")
        if not 1 <= self.quality <= 100:
            raise UserError(f"--quality must be between 1 and 100, got {self.quality}")
        return self

    @property
    def jpeg_quality(self) -> int | None:
        """The JPEG quality of a JPEG store; None for a raw one."""
        return self.quality if self.encoding == "jpeg" else None
