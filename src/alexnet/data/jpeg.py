"""The compressed store's images: one JPEG per image, decoded in batches where they are used.

A raw ILSVRC-2012 store at 256x256 takes about 250 GB; as JPEG (quality 90) about 27 GB. The
stored JPEGs are already the paper's 256x256 central crops, so reading one back is a single
decode at a small size: on a GPU, a whole batch at once by nvJPEG (`torchvision.io.decode_jpeg`
with a CUDA device); on the CPU, by libjpeg-turbo in threads (the decoder releases the GIL).

`JpegImages` stands in for the raw store's uint8 [N, size, size, 3] array wherever one is
read: indexing with an int, a slice or an index array returns decoded numpy images, and
`decode(read_bytes(idx), device)` gives a uint8 NHWC batch on `device` for the loader. The
JPEGs are written by `prepare` (`data/prepare/worker.py`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from alexnet.data.threads import thread_pool

# torchvision 0.29 marks its image codecs deprecated in favour of TorchCodec; they are still
# the ones that decode JPEG batches with nvJPEG on every torchvision this project supports.
warnings.filterwarnings("ignore", category=DeprecationWarning,
                        message="The image decoding and encoding capabilities of TorchVision")


def decode_batch(blobs: list[torch.Tensor], device="cpu") -> torch.Tensor:
    """JPEG bytes (uint8 1-D tensors on the CPU) of equal-sized images -> uint8 [B, H, W, 3]
    on `device`: nvJPEG in one batched call on CUDA, libjpeg-turbo across threads on the CPU."""
    from torchvision.io import ImageReadMode, decode_jpeg

    device = torch.device(device)
    if not blobs:
        raise ValueError("no images to decode")
    if device.type == "cuda":
        planes = decode_jpeg(blobs, mode=ImageReadMode.RGB, device=device)   # [3, H, W] each
        return torch.stack(planes).permute(0, 2, 3, 1).contiguous()
    threads = torch.get_num_threads()   # the process's budget (`threads=` / --threads)
    parts = max(1, min(len(blobs) // 8, threads))
    bounds = np.linspace(0, len(blobs), parts + 1).astype(int)
    chunks = [blobs[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    def decode(chunk):
        return decode_jpeg(chunk, mode=ImageReadMode.RGB)

    decoded = thread_pool(threads).map(decode, chunks) if parts > 1 else [decode(chunks[0])]
    planes = [plane for chunk in decoded for plane in chunk]
    return torch.stack(planes).permute(0, 2, 3, 1).contiguous().to(device)


class JpegImages:
    """The images of a JPEG store, read like a uint8 [N, size, size, 3] array.

    path: the concatenated JPEG bytes; index: int64 [N, 2], (offset, length) of image i.
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, path: Path, index: np.ndarray, size: int):
        self.path, self.index, self.size = Path(path), np.asarray(index, np.int64), int(size)
        self.shape = (len(self.index), self.size, self.size, 3)
        self.nbytes = int(np.prod(self.shape))            # decoded, as a raw store would hold
        self._bytes = None

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"JpegImages({str(self.path)!r}, shape={self.shape})"

    def _mapped(self) -> np.memmap:
        if self._bytes is None:  # mapped on first use, so a forked reader maps its own
            self._bytes = np.memmap(self.path, dtype=np.uint8, mode="r")
        return self._bytes

    def read_bytes(self, idx) -> list[torch.Tensor]:
        """The JPEG bytes of images `idx` (int array), each a uint8 1-D CPU tensor."""
        data = self._mapped()
        return [torch.from_numpy(np.array(data[o:o + n])) for o, n in self.index[idx]]

    def decode(self, blobs: list[torch.Tensor], device="cpu") -> torch.Tensor:
        return decode_batch(blobs, device)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):  # e.g. images[i, :, :, 0]: decode the rows, then slice
            return self[key[0]][(slice(None), *key[1:])] if not np.isscalar(key[0]) \
                else self[key[0]][key[1:]]
        if np.isscalar(key):
            i = int(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"image {i} is out of range for {len(self)} images")
            return self[np.array([i % len(self)])][0]
        if isinstance(key, slice):
            idx = np.arange(*key.indices(len(self)))
        else:
            idx = np.asarray(key)
            idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64)
            if idx.size and not (-len(self) <= idx.min() and idx.max() < len(self)):
                raise IndexError(f"image indices outside 0..{len(self) - 1}")
            idx = idx % max(len(self), 1)
        if len(idx) == 0:
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        return decode_batch(self.read_bytes(idx)).numpy()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        images = np.empty(self.shape, np.uint8)
        for start in range(0, len(self), 1024):       # bounded temporary memory
            images[start:start + 1024] = self[start:start + 1024]
        return images if dtype is None else images.astype(dtype)
