"""Feeding uint8 batches from the store: a seeded permutation per epoch, sharded across ranks.

The order of an epoch depends only on (seed, epoch), so a run resumed at batch k of epoch e
sees exactly the batches it would have seen (`iterate(e, start_batch=k)`). Each batch is read
from the memory-mapped store with its indices sorted (sequential reads; the order inside a
batch does not matter to SGD), by a background thread into pinned memory when the device is
CUDA, and copied to the device asynchronously. A JPEG store's batches are read as bytes by
the thread and decoded where they are used: by nvJPEG on the GPU, in the thread on the CPU.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np
import torch


class StoreLoader:
    """Batches (images uint8 [B,H,W,3], labels int64 [B]) on `device`.

    images: np.memmap / np.ndarray uint8 [N,H,W,3], a JPEG store's JpegImages, or a torch
    tensor (indexed where it is, e.g. a whole CIFAR-10 store already on the GPU). Shards:
    rank r takes every world_size-th sample of the permutation, so shards are disjoint and
    together cover it. With drop_last, every rank gets the same number of full batches (what
    DDP needs).
    """

    def __init__(self, images, labels, batch_size: int, *, indices=None, shuffle: bool = True,
                 seed: int = 0, rank: int = 0, world_size: int = 1, drop_last: bool = False,
                 device="cpu", prefetch: int = 2):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.jpeg = hasattr(images, "read_bytes")
        if not isinstance(images, torch.Tensor) and not self.jpeg:
            images = np.asarray(images)  # a plain view of a memmap: takes return ndarrays
        self.images, self.batch_size = images, int(batch_size)
        self.labels = labels if isinstance(labels, torch.Tensor) else \
            torch.from_numpy(np.asarray(labels, dtype=np.int64))
        n = len(self.labels)
        self.indices = np.arange(n, dtype=np.int64) if indices is None else \
            np.asarray(indices, dtype=np.int64)
        self.shuffle, self.seed, self.drop_last = shuffle, int(seed), drop_last
        self.rank, self.world_size = rank, world_size
        self.device, self.prefetch = torch.device(device), int(prefetch)

    def _per_rank(self) -> int:
        n = len(self.indices)
        if self.drop_last:
            return (n // self.world_size) // self.batch_size * self.batch_size
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        per_rank = self._per_rank()
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """This rank's sample indices for `epoch`, in order: int64 [samples per rank]."""
        order = self.indices
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.indices)
        return order[self.rank::self.world_size][:self._per_rank()]

    def batch_indices(self, epoch: int, start_batch: int = 0) -> Iterator[np.ndarray]:
        order = self.epoch_order(epoch)
        for b in range(start_batch, len(self)):
            yield np.sort(order[b * self.batch_size:(b + 1) * self.batch_size])

    def iterate(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch` from batch `start_batch` on."""
        batches = self.batch_indices(epoch, start_batch)
        if isinstance(self.images, torch.Tensor):
            labels = self.labels.to(self.images.device)   # once per epoch, not per batch
            for idx in batches:
                t = torch.from_numpy(idx).to(self.images.device)
                yield (self.images[t].to(self.device, non_blocking=True),
                       labels[t].to(self.device, non_blocking=True))
            return
        if self.prefetch <= 0:
            for idx in batches:
                yield self._to_device(*self._read(idx, None))
            return
        yield from self._prefetched(batches)

    def _read(self, idx: np.ndarray, out: torch.Tensor | None):
        """Rows idx of the store into `out` (a pinned buffer) or a fresh tensor; from a JPEG
        store, the bytes when they are decoded on the GPU, else the decoded images."""
        labels = self.labels[torch.from_numpy(idx)]
        if self.jpeg:
            blobs = self.images.read_bytes(idx)
            return (blobs if self.device.type == "cuda" else self.images.decode(blobs)), labels
        if out is None:
            images = torch.from_numpy(np.take(self.images, idx, axis=0))
        else:
            images = out[:len(idx)]
            np.take(self.images, idx, axis=0, out=images.numpy())
        return images, labels

    def _to_device(self, images, labels: torch.Tensor):
        if self.device.type == "cpu":
            return images, labels
        if self.jpeg:   # a list of JPEG byte tensors: one batched nvJPEG call
            return (self.images.decode(images, self.device),
                    labels.to(self.device, non_blocking=True))
        return (images.to(self.device, non_blocking=True),
                labels.to(self.device, non_blocking=True))

    def _prefetched(self, batches: Iterator[np.ndarray]):
        """Read ahead in a thread (numpy copies release the GIL). On CUDA, batches land in a
        ring of pinned buffers; a buffer is reused only after its copy to the GPU finished."""
        pinned = self.device.type == "cuda" and not self.jpeg   # a ring for raw rows only
        ready: queue.Queue = queue.Queue(maxsize=self.prefetch)
        free: queue.Queue = queue.Queue()
        if pinned:
            shape = (self.batch_size, *self.images.shape[1:])
            for _ in range(self.prefetch + 1):
                free.put((torch.empty(shape, dtype=torch.uint8).pin_memory(), None))
        stop = threading.Event()

        def wait(q: queue.Queue, item=None, put=False):
            """put/get that gives up when the consumer has gone (stop is set)."""
            while not stop.is_set():
                try:
                    return q.put(item, timeout=0.1) if put else q.get(timeout=0.1)
                except (queue.Full, queue.Empty):
                    continue
            raise _Stopped

        def produce():
            try:
                for idx in batches:
                    buf = None
                    if pinned:
                        buf, event = wait(free)
                        if event is not None:
                            event.synchronize()
                    wait(ready, (*self._read(idx, buf), buf), put=True)
                wait(ready, None, put=True)
            except _Stopped:
                return
            except BaseException as err:  # surfaced in the consuming thread
                stop.is_set() or ready.put(err)

        thread = threading.Thread(target=produce, daemon=True, name="StoreLoader")
        thread.start()
        try:
            while True:
                item = ready.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                images, labels, buf = item
                out = self._to_device(images, labels)
                if pinned:
                    event = torch.cuda.Event()
                    event.record()
                    free.put((buf, event))
                yield out
        finally:
            stop.set()
            thread.join()


class _Stopped(Exception):
    pass
