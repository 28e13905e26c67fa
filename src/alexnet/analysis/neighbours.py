"""Nearest training images in pre-logits space (paper Fig. 4 right).

The paper compares fc7 activations (the last 4096-d hidden layer) by Euclidean distance;
`forward_head(..., pre_logits=True)` gives that layer for every model here (the flattened
last hidden maps for the CIFAR nets). Features of a whole store are computed once, on the
centre view, in batches, on the inference fast path (`eval`'s layout and bf16 autocast where
the machine has it: 3.3x fp32's speed on the AMX Xeon dev VM), and cached as a .npy file
keyed by the checkpoint's content hash, the store's identity and the precision, so later
queries only read the cache (memory-mapped) and do one matrix product per chunk.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from alexnet.analysis.predictions import decode_files
from alexnet.console import info, progress
from alexnet.data.cache import ensure_store
from alexnet.data.views import center_view
from alexnet.engine.evaluate import model_device
from alexnet.engine.fast_path import prepare_for_inference
from alexnet.errors import UserError
from alexnet.files import atomic_path, cache_root, file_sha256, sha256_hex

CHUNK_ROWS = 8192       # store features compared per matrix product (bounded memory)
RERANK_EXTRA = 8        # float32 candidates re-ranked exactly in float64


def store_digest(store, length: int = 16) -> str:
    """Identity of a store: its resolved path, manifest and images file size and mtime."""
    images = Path(store.path) / "images.u8"
    stat = images.stat() if images.exists() else None
    parts = [str(Path(store.path).resolve()), json.dumps(store.manifest, sort_keys=True),
             f"{stat.st_size}:{stat.st_mtime_ns}" if stat else "-"]
    return sha256_hex("\n".join(parts))[:length]


@torch.inference_mode()
def extract_features(model: torch.nn.Module, images, preprocessing, batch_size: int = 256,
                     show_progress: bool = True,
                     amp_dtype: torch.dtype | None = None) -> np.ndarray:
    """uint8 images [N, S, S, 3] (array or memmap) -> float32 pre-logits features [N, D].

    Centre view, normalised as in evaluation; runs on the model's device in eval mode, under
    autocast to `amp_dtype` when given.
    """
    device = model_device(model)
    model.eval()
    out: np.ndarray | None = None
    total = len(images)
    with progress(total, "features", unit="img", enabled=show_progress) as bar:
        for start in range(0, total, batch_size):
            chunk = torch.from_numpy(np.array(images[start:start + batch_size]))  # own copy
            x = center_view(chunk.to(device), preprocessing)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                enabled=amp_dtype is not None):
                f = model.forward_head(model.forward_features(x), pre_logits=True)
            f = f.flatten(1).float().cpu().numpy()
            if out is None:
                out = np.empty((total, f.shape[1]), dtype=np.float32)
            out[start:start + len(f)] = f
            bar.advance(len(f))
    return out if out is not None else np.zeros((0, 0), np.float32)


def store_features(loaded, store, cache_dir: str | os.PathLike | None = None,
                   batch_size: int = 256, amp_dtype: torch.dtype | None = None
                   ) -> tuple[np.ndarray, dict]:
    """(features [N, D] float32, memory-mapped; info) for every image of `store`, cached.

    info: {"cache": path, "cached": whether it was already there, "seconds", "images", "dim"}.
    """
    check_store_fits(loaded, store)
    cache_dir = Path(cache_dir) if cache_dir else cache_root() / "features"
    precision = f"-{str(amp_dtype).removeprefix('torch.')}" if amp_dtype is not None else ""
    key = f"{file_sha256(loaded.path)[:16]}-{store_digest(store)}{precision}"
    path = cache_dir / f"{key}.npy"
    started = time.perf_counter()
    cached = path.is_file()
    if not cached:
        features = extract_features(loaded.model, store.images, loaded.preprocessing,
                                    batch_size=batch_size, amp_dtype=amp_dtype)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, features)
    features = np.load(path, mmap_mode="r")
    if features.shape[0] != len(store):
        raise UserError(f"feature cache {str(path)!r} does not match the store "
                        f"({features.shape[0]} rows for {len(store)} images); delete it")
    return features, {"cache": str(path), "cached": cached, "images": int(features.shape[0]),
                      "dim": int(features.shape[1]),
                      "seconds": round(time.perf_counter() - started, 3)}


def check_store_fits(loaded, store) -> None:
    if store.size != loaded.preprocessing.size:
        raise UserError(f"checkpoint {str(loaded.path)!r} expects images stored at "
                        f"{loaded.preprocessing.size}x{loaded.preprocessing.size}, but store "
                        f"{str(store.path)!r} holds {store.size}x{store.size} images")


def nearest(features: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices [Q, k] and Euclidean distances [Q, k] of each query's k nearest rows, closest first.

    Candidates come from ||q||^2 - 2 q.f + ||f||^2 in float32 chunk by chunk; the best
    k + RERANK_EXTRA are then measured exactly (float64 ||q - f||), so an identical image
    is at distance 0 and comes first despite float32 cancellation.
    """
    n = features.shape[0]
    if n == 0:
        raise UserError("the store holds no images to search")
    k = min(k, n)
    wanted = min(n, k + RERANK_EXTRA)
    q = torch.from_numpy(np.asarray(queries, dtype=np.float32))
    q_sq = q.square().sum(1, keepdim=True)
    best_d = torch.full((q.shape[0], 0), float("inf"))
    best_i = torch.zeros((q.shape[0], 0), dtype=torch.int64)
    for start in range(0, n, CHUNK_ROWS):
        f = torch.from_numpy(np.array(features[start:start + CHUNK_ROWS], dtype=np.float32))
        d = q_sq - 2 * q @ f.T + f.square().sum(1)[None]           # [Q, chunk]
        d_all = torch.cat([best_d, d], 1)
        i_all = torch.cat([best_i, torch.arange(start, start + len(f)).expand(len(q), -1)], 1)
        best_d, pos = d_all.topk(min(wanted, d_all.shape[1]), dim=1, largest=False)
        best_i = i_all.gather(1, pos)
    unique = np.unique(best_i.numpy())                          # sorted: cheap memmap reads
    rows = np.asarray(features[unique], dtype=np.float64)
    lookup = {int(i): r for r, i in enumerate(unique)}
    indices, distances = [], []
    for qi, candidates in enumerate(best_i.numpy()):
        exact = np.linalg.norm(rows[[lookup[int(i)] for i in candidates]]
                               - np.asarray(queries[qi], dtype=np.float64), axis=1)
        order = np.lexsort((candidates, exact))[:k]            # distance, then index
        indices.append(candidates[order])
        distances.append(exact[order])
    return np.stack(indices), np.stack(distances)


def find_neighbours(loaded, data: str, query_files: list[Path], k: int,
                    cache_dir: str | os.PathLike | None = None, batch_size: int = 256,
                    amp: str = "auto") -> tuple[object, dict, list[dict]]:
    """The `k` images of the training store `data` nearest to each query file in the
    checkpoint's pre-logits space: (store, feature cache info with "query_seconds", one
    {"file", "image", "neighbours": [{"index", "file", "label", "distance", "image"}]} per
    query that could be read). A folder of images is prepared once into the store cache.
    Unreadable queries are reported and left out; none readable is a UserError. `amp`: as
    `eval --amp` (queries and store in the same precision)."""
    store = ensure_store(data, loaded.preprocessing.size)
    amp_dtype = prepare_for_inference(loaded.model, amp)
    features, cache = store_features(loaded, store, cache_dir, batch_size=batch_size,
                                     amp_dtype=amp_dtype)
    started = time.perf_counter()
    queries = []
    for path, image, why in decode_files(query_files, loaded.preprocessing.size):
        if image is None:
            info(f"{path}: skipped: {why}")
        else:
            queries.append((path, image))
    if not queries:
        raise UserError("none of the query images could be read")
    query_features = extract_features(loaded.model, np.stack([im for _, im in queries]),
                                      loaded.preprocessing, show_progress=False,
                                      amp_dtype=amp_dtype)
    indices, distances = nearest(features, query_features, k)
    cache["query_seconds"] = round(time.perf_counter() - started, 3)
    found = []
    for (path, image), idx, dist in zip(queries, indices, distances, strict=True):
        found.append({"file": str(path), "image": image, "neighbours": [
            {"index": int(i), "file": store.files[i],
             "label": store.class_names[int(store.labels[i])], "distance": float(d),
             "image": np.asarray(store.images[i])} for i, d in zip(idx, dist, strict=True)]})
    return store, cache, found
